-- crm_native.search_customers (docs/operations.md): the query tried as an
-- email, a phone (normalized as the keys: '555-123-4567' finds the key
-- '15551234567', which the seed's digits-only normalization misses) and a
-- name (normalized name key, pg_trgm similarity); ranked email, phone, name;
-- soft-deleted customers excluded, merged customers resolved to their
-- survivor; never another company's customer; bad input refused.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'A'), ('bbbbbbbb-0000-0000-0000-000000000002', 'B');
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000001', 'Ann Lee', 'Ann@A.example', '+1 555-123-4567', '2024-01-01'),
  ('a0000000-0000-0000-0000-000000000002', 'aaaaaaaa-0000-0000-0000-000000000001', 'John Smith', 'john@a.example', '(555) 987-6543', '2024-01-02'),
  ('a0000000-0000-0000-0000-000000000003', 'aaaaaaaa-0000-0000-0000-000000000001', 'Jon Smyth', NULL, NULL, '2024-01-03'),
  ('a0000000-0000-0000-0000-000000000004', 'aaaaaaaa-0000-0000-0000-000000000001', 'Johnny Smith', 'gone@a.example', NULL, '2024-01-04'),
  -- merged into John Smith, still live (the application merged it by hand)
  ('a0000000-0000-0000-0000-000000000005', 'aaaaaaaa-0000-0000-0000-000000000001', 'J. Smith', 'js@a.example', NULL, '2024-01-05'),
  -- company B holds the same email, phone and name as Ann
  ('b0000000-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002', 'Ann Lee', 'ann@a.example', '5551234567', '2024-01-01');
UPDATE customers SET deleted_at = now() WHERE id = 'a0000000-0000-0000-0000-000000000004';
UPDATE customers SET merged_into_customer_id = 'a0000000-0000-0000-0000-000000000002'
 WHERE id = 'a0000000-0000-0000-0000-000000000005';

-- the seed's digits-only normalization misses the native phone key
SELECT public.crm_normalize_phone('555-123-4567') AS seed_key, crm_native.normalize_phone('555-123-4567') AS native_key;
-- email: exact normalized key (case and spaces do not matter)
SELECT customer_id, customer_name, matched_by, score
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', '  ANN@a.Example ');
-- phone, written differently from the stored value
SELECT customer_id, customer_name, matched_by, score
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', '555-123-4567');
SELECT customer_id, customer_name, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', '+15559876543');
-- name: exact key first, then trigram similarity; the soft-deleted Johnny
-- Smith is not returned, the merged J. Smith resolves to John Smith (once)
SELECT customer_id, customer_name, matched_by, round(score::numeric, 3) AS score
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'john smith');
SELECT customer_id, customer_name, matched_by, round(score::numeric, 3) AS score
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'smith');
-- the merged customer's own email finds its survivor
SELECT customer_id, customer_name, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'js@a.example');
-- a query starting or ending with "v" keeps it (0.5.0 trimmed E'\v', which
-- is the letter v in an escape string); a vertical tab is trimmed
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at) VALUES
  ('a0000000-0000-0000-0000-000000000006', 'aaaaaaaa-0000-0000-0000-000000000001', 'Vee Dov', 'vee.dov@a.example', '2024-01-06');
SELECT customer_id, customer_name, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', E'\x0Bvee.dov@a.example ');
SELECT customer_id, customer_name, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'vee dov');
DELETE FROM customers WHERE id = 'a0000000-0000-0000-0000-000000000006';
-- the soft-deleted customer's email finds nothing
SELECT count(*) AS deleted_found
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'gone@a.example');
-- what each query is tried as: an email is not a phone nor a name, digits
-- are not a name
SELECT q, k.* FROM unnest(ARRAY['Ann@A.example', '555-123-4567', '+1 (555) 123-4567 ext. 8', 'John Smith', 'R2D2'])
  AS q, crm_native._search_keys(q) AS k;
-- max_results
SELECT count(*) AS limited
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'smith', 1);
-- company B's search sees only B's Ann
SELECT customer_id, matched_by
  FROM crm_native.search_customers('bbbbbbbb-0000-0000-0000-000000000002', 'ann@a.example');
-- one row per customer, by its best reason: Ann's name key and trigram
-- similarity both match, she is listed once, as 'name'
SELECT customer_id, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'Ann Lee');

-- bad input: refused with a clear error
\set VERBOSITY terse
SELECT * FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', '   ');
SELECT * FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', NULL);
SELECT * FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann', -1);
SELECT * FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann', 0);
SELECT * FROM crm_native.search_customers(NULL, 'ann');
SELECT * FROM crm_native.search_customers('cccccccc-0000-0000-0000-000000000003', 'ann');
SELECT * FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann', 20, 'no_such_schema');
\set VERBOSITY default

-- The application role needs USAGE on schema crm_native (docs/operations.md).
GRANT USAGE ON SCHEMA crm_native TO crm_app;
-- As crm_app under row-level security: the company's own customers only;
-- another company's id is refused (its companies row is invisible).
SET ROLE crm_app;
SELECT set_config('app.current_company_id', 'aaaaaaaa-0000-0000-0000-000000000001', false);
SELECT customer_id, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann@a.example');
\set VERBOSITY terse
SELECT * FROM crm_native.search_customers('bbbbbbbb-0000-0000-0000-000000000002', 'ann@a.example');
\set VERBOSITY default
RESET ROLE;

-- A hostile search_path changes nothing: a decoy schema with its own
-- customers table and an always-true uuid "=" comes first.
CREATE SCHEMA decoy;
CREATE TABLE decoy.customers (LIKE public.customers);
INSERT INTO decoy.customers (id, company_id, customer_name, customer_email)
  VALUES ('dddddddd-0000-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000001', 'Ann Lee', 'ann@a.example');
CREATE FUNCTION decoy.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR decoy.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = decoy.always);
SET search_path = decoy, public, pg_catalog;
SELECT customer_id, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann@a.example');
RESET search_path;

-- The plan of the statement search_customers runs (crm_native._search_query,
-- custom plan for these values) uses the keys index with all three columns
-- for each probe and the trigram index for names; no sequential scan.
-- 3,000 more customers in company A, analyzed, and enable_seqscan = off
-- stand for a real tenant (scripts/bench.sh times it at 100,000).
INSERT INTO customers (company_id, customer_name, customer_email, customer_phone)
SELECT 'aaaaaaaa-0000-0000-0000-000000000001', 'Person ' || md5(i::text), 'p' || i || '@a.example',
       '+1 555 ' || lpad(i::text, 7, '0')
  FROM generate_series(1, 3000) i;
VACUUM ANALYZE;   -- also flushes the GIN pending list
\set ECHO none
SELECT format('PREPARE search_plan (uuid, text, int, text, text, text, text, boolean) AS %s',
              crm_native._search_query('public', 'public')) \gexec
\set ECHO all
CREATE FUNCTION pg_temp.plan_of(stmt text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || stmt LOOP RETURN NEXT line; END LOOP;
END $$;
SET enable_seqscan = off;
CREATE TEMP TABLE search_plan AS
  SELECT * FROM pg_temp.plan_of($$EXECUTE search_plan('aaaaaaaa-0000-0000-0000-000000000001', 'smith', 20,
       'smith', NULL, 'smith', 'public', true)$$) AS line;
SELECT count(*) FILTER (WHERE line ~ 'Seq Scan on (customers|customer_matching_keys)') AS seq_scans,
       count(*) FILTER (WHERE line ~ 'Index Scan using idx_matching_keys_normalized') AS key_probes,
       count(*) FILTER (WHERE line ~ 'Index Cond: \(\(company_id = .*key_type = .*normalized_value = ') AS full_key_conditions,
       count(*) FILTER (WHERE line ~ 'Bitmap Index Scan on idx_customers_name_trgm') AS trigram_scans
  FROM search_plan;
RESET enable_seqscan;
SELECT operation, item, ok FROM crm_native.verify_operations() WHERE operation = 'search_customers';

-- Name search under row-level security. pg_trgm's % is not LEAKPROOF, so as
-- crm_app the planner may not use it as an index condition: the name branch
-- filters the tenant's rows instead of using idx_customers_name_trgm.
GRANT SELECT ON crm_native.native_trigger TO crm_app;
SELECT crm_native._search_name_operator('public', 'public') AS name_operator;
CREATE FUNCTION pg_temp.name_plan() RETURNS TABLE (trigram_index text, name_filter boolean)
LANGUAGE plpgsql AS $$
DECLARE lines text[];
BEGIN
  EXECUTE format('PREPARE rls_plan (uuid, text, int, text, text, text, text, boolean) AS %s',
                 crm_native._search_query('public', 'public'));
  SELECT array_agg(l) INTO lines FROM pg_temp.plan_of($q$EXECUTE rls_plan('aaaaaaaa-0000-0000-0000-000000000001',
      'smith', 20, NULL, NULL, 'smith', 'public', true)$q$) AS l;
  DEALLOCATE rls_plan;
  RETURN QUERY SELECT (SELECT substring(l FROM 'Bitmap Index Scan on (\S+)') FROM unnest(lines) l
                        WHERE l ~ 'Bitmap Index Scan on idx_customers_name' LIMIT 1),
                      EXISTS (SELECT FROM unnest(lines) l WHERE l ~ 'Filter: .*customer_name %');
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.plan_of(text), pg_temp.name_plan() TO crm_app;
SET enable_seqscan = off;
SET ROLE crm_app;
SELECT * FROM pg_temp.name_plan();
RESET ROLE;
-- crm_native.% is pg_trgm's similarity operator declared LEAKPROOF, with a
-- GIN operator class: an index of that class serves the search as crm_app.
SELECT p.proleakproof AS leakproof, p.prosrc
  FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
 WHERE o.oprnamespace = 'crm_native'::regnamespace AND o.oprname = '%';
-- ... and gives pg_trgm's answer, at the default and at another threshold
SELECT count(*) AS pairs, count(*) FILTER (WHERE (a OPERATOR(crm_native.%) b) IS DISTINCT FROM (a % b)) AS differ
  FROM unnest(ARRAY['John Smith', 'Jon Smyth', 'smith', 'Ann Lee', 'ann', '', 'Jöhn Śmith', 'x']) a,
       unnest(ARRAY['john smith', 'Johnny Smith', 'Smith John', 'Anne Leigh', 'zzz', '']) b;
SET pg_trgm.similarity_threshold = 0.1;
SELECT count(*) FILTER (WHERE a OPERATOR(crm_native.%) b) AS similar,
       count(*) FILTER (WHERE (a OPERATOR(crm_native.%) b) IS DISTINCT FROM (a % b)) AS differ
  FROM unnest(ARRAY['John Smith', 'Jon Smyth', 'smith', 'Ann Lee']) a, unnest(ARRAY['john smith', 'Anne Leigh', 'zzz']) b;
RESET pg_trgm.similarity_threshold;
-- verify_operations() advises the index (row-level security is on)
SELECT ok, detail FROM crm_native.verify_operations() WHERE item = 'name index usable under row-level security';
CREATE INDEX idx_customers_name_trgm_leakproof ON customers
  USING gin (customer_name crm_native.gin_trgm_leakproof_ops) WHERE deleted_at IS NULL;
ANALYZE customers;
SELECT ok, detail FROM crm_native.verify_operations() WHERE item = 'name index usable under row-level security';
SELECT crm_native._search_name_operator('public', 'public') AS name_operator;
SET ROLE crm_app;
SELECT * FROM pg_temp.name_plan();
-- the same answers as the owner's, and never company B's Ann Lee
SELECT customer_id, customer_name, matched_by, round(score::numeric, 3) AS score
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'smith');
SELECT customer_id, matched_by
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'Ann Le');
RESET ROLE;
SELECT customer_id, customer_name, matched_by, round(score::numeric, 3) AS score
  FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'smith');
RESET enable_seqscan;
DROP INDEX idx_customers_name_trgm_leakproof;
SELECT crm_native._search_name_operator('public', 'public') AS name_operator;
-- an index of the class for one tenant only does not serve the search's
-- query: the search keeps pg_trgm's operator
CREATE INDEX idx_customers_name_trgm_leakproof_a ON customers
  USING gin (customer_name crm_native.gin_trgm_leakproof_ops)
  WHERE company_id = 'aaaaaaaa-0000-0000-0000-000000000001';
SELECT crm_native._search_name_operator('public', 'public') AS name_operator;
DROP INDEX idx_customers_name_trgm_leakproof_a;
-- a customer found by its exact name key and by similarity (score 1 both)
-- is listed by its best reason, the key: 'name', whatever order the two
-- hits arrive in (with 13 namesakes it came out 'similar_name'; found by
-- an independent tester)
INSERT INTO companies (id, name) VALUES ('cccccccc-0000-0000-0000-000000000003', 'C');
INSERT INTO customers (company_id, customer_name)
SELECT 'cccccccc-0000-0000-0000-000000000003', 'Person ' || g FROM generate_series(1, 13) g;
SELECT customer_name, matched_by, score FROM crm_native.search_customers('cccccccc-0000-0000-0000-000000000003', 'Person 1')
 WHERE customer_name = 'Person 1';

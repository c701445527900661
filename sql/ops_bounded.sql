-- The operations' work per call is bounded by the customers involved, not
-- by the tenant's size nor by statistics: merge_customers, search_customers,
-- rebuild_metrics(customer) and rebuild_matching_keys(customer) on a
-- never-analyzed tenant of 20,000 customers beside a small one, with the
-- application's extra indexes on company_id, as the owner and as crm_app
-- under row-level security. Counted (table rows and index entries read,
-- pg_stat_xact_*), not timed. Found by an independent tester: under
-- row-level security a tenant's index (idx_customers_lifecycle, on
-- company_id, WHERE deleted_at IS NULL, which the policy matches) served the
-- merge's row locks and updates by id and the search's final lookup (every
-- customer of the tenant read), the keys statements read the tenant's keys
-- through idx_matching_keys_normalized, and a name search as crm_app ignored
-- idx_customers_name_trgm_leakproof. The statements carry index pins
-- (docs/tenancy.md, "Index pins").
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
GRANT USAGE ON SCHEMA crm_native TO crm_app;
INSERT INTO companies (id, name) VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'big'),
                                        ('bbbbbbbb-0000-4000-8000-000000000002', 'small');
-- indexes an application may add (customers_company_id_fkey, on
-- customers (company_id), is the seed's)
CREATE INDEX app_keys_company ON customer_matching_keys (company_id);
CREATE INDEX app_vc_company ON "VC Usage" (company_id);
-- and a btree on the name for the live customers (a list sorted by name):
-- it must not serve the name search's % (read whole, it read every live
-- customer per search; found by an independent tester)
CREATE INDEX app_customers_by_name ON customers (customer_name) WHERE deleted_at IS NULL;
CREATE INDEX idx_customers_name_trgm_leakproof ON customers
    USING gin (customer_name crm_native.gin_trgm_leakproof_ops) WHERE deleted_at IS NULL;
ALTER TABLE customers SET (autovacuum_enabled = off);
ALTER TABLE "VC Usage" SET (autovacuum_enabled = off);
ALTER TABLE customer_matching_keys SET (autovacuum_enabled = off);
ALTER TABLE customer_metrics SET (autovacuum_enabled = off);

-- The big tenant, loaded with the triggers off, then keys and metrics
-- rebuilt; never analyzed. Names are distinct (md5), so a name search finds
-- few similar names.
SET session_replication_role = replica;
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone)
SELECT ('a0000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'aaaaaaaa-0000-4000-8000-000000000001',
       substr(md5(g::text), 1, 12), 'c' || g || '@big.example.com', '+1 212 555 ' || lpad(g::text, 5, '0')
  FROM generate_series(1, 20000) g;
INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, customer_phone, session_id)
SELECT c.company_id, c.id, c.customer_name, c.customer_email, c.customer_phone, 's' || c.id
  FROM customers c;
RESET session_replication_role;
SELECT crm_native.rebuild_matching_keys() AS keys;
SELECT crm_native.rebuild_metrics() AS metrics;
-- the small tenant, through the triggers
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT 'bbbbbbbb-0000-4000-8000-000000000002', 'Small ' || g, 'small' || g || '@example.com', 'x' || g
  FROM generate_series(1, 10) g;
SELECT count(*) AS analyzed FROM pg_stats WHERE tablename IN ('customers', 'customer_matching_keys', 'VC Usage');

-- Rows and index entries this transaction read from the CRM tables so far.
CREATE FUNCTION public.ops_reads() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(t.seq_tup_read + coalesce(t.idx_tup_fetch, 0)
                      + (SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)
                           FROM pg_index i WHERE i.indrelid = t.relid)), 0)::bigint
    FROM pg_stat_xact_user_tables t
   WHERE t.relname IN ('VC Usage', 'customers', 'customer_matching_keys', 'customer_metrics',
                       'customer_conversation_summaries')
$$;
GRANT EXECUTE ON FUNCTION public.ops_reads() TO crm_app;

-- A new connection, whose first statement is a merge as crm_app: the pins
-- are read by the library's planner hook, loaded by the merge itself.
\c
BEGIN;
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT public.ops_reads() AS r0 \gset
SELECT crm_native.merge_customers('a0000000-0000-4000-8000-000000000005', 'a0000000-0000-4000-8000-000000000006');
SELECT public.ops_reads() - :r0 < 300 AS merge_as_crm_app_first_call_bounded;
ROLLBACK;

-- 1. merge_customers, as crm_app and as the owner.
BEGIN;
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT public.ops_reads() AS r0 \gset
SELECT crm_native.merge_customers('a0000000-0000-4000-8000-000000000007', 'a0000000-0000-4000-8000-000000000008');
SELECT public.ops_reads() - :r0 < 300 AS merge_as_crm_app_bounded;
COMMIT;
BEGIN;
SELECT public.ops_reads() AS r0 \gset
SELECT crm_native.merge_customers('a0000000-0000-4000-8000-000000000009', 'a0000000-0000-4000-8000-00000000000a');
SELECT public.ops_reads() - :r0 < 300 AS merge_as_owner_bounded;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
SELECT c.id, c.deleted_at IS NOT NULL AS deleted, c.merged_into_customer_id,
       (SELECT count(*) FROM customer_matching_keys k WHERE k.customer_id = c.id) AS keys,
       (SELECT count(*) FROM "VC Usage" v WHERE v.customer_id = c.id) AS chats
  FROM customers c
 WHERE c.id IN ('a0000000-0000-4000-8000-000000000007', 'a0000000-0000-4000-8000-000000000008',
                'a0000000-0000-4000-8000-000000000009', 'a0000000-0000-4000-8000-00000000000a')
 ORDER BY c.id;

-- 2. search_customers by email, phone and name, as crm_app and as the owner
--    (as crm_app the name branch uses idx_customers_name_trgm_leakproof).
CREATE FUNCTION public.search_reads(q text) RETURNS TABLE (hits text, bounded boolean) LANGUAGE plpgsql AS $$
DECLARE
    r0 bigint := public.ops_reads();
BEGIN
    SELECT string_agg(s.customer_email || ' ' || s.matched_by, ', ' ORDER BY s.customer_email) INTO hits
      FROM crm_native.search_customers('aaaaaaaa-0000-4000-8000-000000000001', q) s;
    bounded := public.ops_reads() - r0 < 100;
    RETURN NEXT;
END
$$;
GRANT EXECUTE ON FUNCTION public.search_reads(text) TO crm_app;
SELECT 'owner' AS role, q, s.* FROM unnest(ARRAY['c1234@big.example.com', '+1 212 555 01234', substr(md5('1234'), 1, 12)]) q,
       LATERAL public.search_reads(q) s;
BEGIN;
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT 'crm_app' AS role, q, s.* FROM unnest(ARRAY['c1234@big.example.com', '+1 212 555 01234', substr(md5('1234'), 1, 12)]) q,
       LATERAL public.search_reads(q) s;
-- the small tenant's search does not see the big one
SET LOCAL app.current_company_id = 'bbbbbbbb-0000-4000-8000-000000000002';
SELECT count(*) AS small_sees_big FROM crm_native.search_customers('bbbbbbbb-0000-4000-8000-000000000002', 'c1234@big.example.com');
COMMIT;

-- 3. One customer's metrics and keys rebuilt, as the owner (and the
--    metrics as crm_app): nothing to change, little read.
BEGIN;
SELECT public.ops_reads() AS r0 \gset
SELECT crm_native.rebuild_metrics('public', 'a0000000-0000-4000-8000-000000000011') AS metrics_written;
SELECT public.ops_reads() - :r0 < 50 AS rebuild_metrics_customer_bounded;
SELECT public.ops_reads() AS r0 \gset
SELECT crm_native.rebuild_matching_keys('public', 'a0000000-0000-4000-8000-000000000011') AS keys_written;
SELECT public.ops_reads() - :r0 < 50 AS rebuild_keys_customer_bounded;
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT public.ops_reads() AS r0 \gset
SELECT crm_native.rebuild_metrics('public', 'a0000000-0000-4000-8000-000000000011') AS metrics_written;
SELECT public.ops_reads() - :r0 < 50 AS rebuild_metrics_customer_as_crm_app_bounded;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

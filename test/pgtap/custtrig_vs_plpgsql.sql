-- The native customers triggers against the application's plpgsql ones
-- (reference/02_plpgsql_triggers.sql): the same workload, run once with the
-- plpgsql triggers and once after install() in the same transaction (so
-- now() is the same), must leave the same customers, matching keys, audit
-- rows and events (generated bigserial ids aside). Inputs are ASCII names and
-- emails and +1 phones, where plpgsql and native normalization agree.
\set ON_ERROR_STOP 1
BEGIN;
SELECT plan(6);

-- Application columns whose type's equality is not JSON's: the audit's
-- "changed" is the plpgsql trigger's (to_jsonb() of old and new differ).
CREATE EXTENSION IF NOT EXISTS citext;
CREATE COLLATION custtrig_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE DOMAIN pg_temp.short_text AS text CHECK (length(VALUE) < 100);
CREATE DOMAIN pg_temp.settings AS jsonb;
ALTER TABLE customers ADD COLUMN nick text COLLATE custtrig_ci, ADD COLUMN alt_email citext,
    ADD COLUMN prefs json, ADD COLUMN quiet interval, ADD COLUMN score numeric, ADD COLUMN motto pg_temp.short_text,
    ADD COLUMN settings pg_temp.settings;

CREATE FUNCTION pg_temp.workload() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO companies (id, name) VALUES
        ('00000000-0000-0000-0000-00000000000a', 'A'), ('00000000-0000-0000-0000-00000000000b', 'B');
    PERFORM set_config('app.current_user_id', '00000000-0000-0000-0000-0000000000f1', true);
    INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, tags, metadata) VALUES
        ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000a', 'Ann Lee', 'Ann@X.com',
         '+1 555 123 4567', '{a}', '{"n": 1}'),
        ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-00000000000a', ' Bob  Ray ', NULL,
         '+1 (555) 987-6543', '{}', '{}'),
        ('00000000-0000-0000-0000-0000000000c3', '00000000-0000-0000-0000-00000000000b', 'Cy', 'cy@b.com', NULL, '{}', '{}'),
        ('00000000-0000-0000-0000-0000000000c4', '00000000-0000-0000-0000-00000000000a', NULL, '  ', '', '{}', '{}');
    INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, source)
    SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid,
           CASE WHEN i % 3 = 0 THEN '00000000-0000-0000-0000-00000000000b'::uuid
                ELSE '00000000-0000-0000-0000-00000000000a'::uuid END,
           'Bulk Person ' || i, 'bulk' || i || '@Example.com',
           CASE WHEN i % 2 = 0 THEN '+1 555 000 ' || lpad(i::text, 4, '0') END, 'bulk'
      FROM generate_series(1, 30) i;

    UPDATE customers SET customer_email = 'ann@y.com' WHERE id = '00000000-0000-0000-0000-0000000000c1';
    UPDATE customers SET customer_name = NULL, customer_phone = '  ' WHERE id = '00000000-0000-0000-0000-0000000000c2';
    UPDATE customers SET customer_email = 'd@x.com' WHERE id = '00000000-0000-0000-0000-0000000000c4';
    UPDATE customers SET status = status;                                  -- no-op for every row
    UPDATE customers SET metadata = '{"n": 1.0}' WHERE id = '00000000-0000-0000-0000-0000000000c1';  -- equal jsonb
    UPDATE customers SET metadata = '{"n": 2}', tags = '{a,b}' WHERE id = '00000000-0000-0000-0000-0000000000c1';
    UPDATE customers SET nick = 'ann', alt_email = 'Ann@X.com', prefs = '{"a": 1, "b": [2]}', quiet = '1 day',
                         score = 1.0 WHERE id = '00000000-0000-0000-0000-0000000000c1';
    UPDATE customers SET motto = 'Hi' WHERE id = '00000000-0000-0000-0000-0000000000c1';       -- a domain over text
    UPDATE customers SET motto = 'Hi' WHERE id = '00000000-0000-0000-0000-0000000000c1';       -- no change
    UPDATE customers SET nick = 'ANN' WHERE id = '00000000-0000-0000-0000-0000000000c1';      -- equal by collation, not in JSON
    UPDATE customers SET alt_email = 'ann@x.com' WHERE id = '00000000-0000-0000-0000-0000000000c1';  -- equal citext, not JSON
    UPDATE customers SET prefs = '{"b": [2],  "a": 1}' WHERE id = '00000000-0000-0000-0000-0000000000c1';  -- equal JSON
    UPDATE customers SET quiet = '24 hours' WHERE id = '00000000-0000-0000-0000-0000000000c1';  -- equal interval, not JSON
    UPDATE customers SET score = 1.00 WHERE id = '00000000-0000-0000-0000-0000000000c1';      -- equal JSON number
    UPDATE customers SET settings = '{"a": 1, "b": 2}' WHERE id = '00000000-0000-0000-0000-0000000000c2';
    UPDATE customers SET settings = '{"b": 2, "a": 1.0}' WHERE id = '00000000-0000-0000-0000-0000000000c2';  -- equal
    UPDATE customers SET settings = NULL WHERE id = '00000000-0000-0000-0000-0000000000c2';
    UPDATE customers SET settings = 'null' WHERE id = '00000000-0000-0000-0000-0000000000c2';  -- JSON null: none
    UPDATE customers SET metadata = NULL, prefs = NULL WHERE id = '00000000-0000-0000-0000-0000000000c2';  -- metadata only
    UPDATE customers SET metadata = 'null', prefs = 'null' WHERE id = '00000000-0000-0000-0000-0000000000c2';  -- JSON null: none
    PERFORM set_config('app.current_user_id', '', true);
    UPDATE customers SET lifecycle_stage = 'lead' WHERE id = '00000000-0000-0000-0000-0000000000c1';
    UPDATE customers SET lifecycle_stage = 'customer' WHERE source = 'bulk' AND customer_name LIKE '%1%';
    UPDATE customers SET lifecycle_stage = NULL WHERE id = '00000000-0000-0000-0000-0000000000c2';
    UPDATE customers SET company_id = '00000000-0000-0000-0000-00000000000a' WHERE id = '00000000-0000-0000-0000-0000000000c3';
    UPDATE customers SET customer_email = upper(customer_email), customer_phone = NULL
     WHERE source = 'bulk' AND customer_name LIKE '%2%';
    PERFORM set_config('app.current_user_id', '00000000-0000-0000-0000-0000000000f2', true);
    UPDATE customers SET deleted_at = now() WHERE id = '00000000-0000-0000-0000-0000000000c2';
    UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000c1', deleted_at = now()
     WHERE id = '00000000-0000-0000-0000-0000000000c4';
    INSERT INTO customers (id, company_id, customer_name) VALUES
        ('00000000-0000-0000-0000-0000000000c3', '00000000-0000-0000-0000-00000000000a', 'Cyrus')
    ON CONFLICT (id) DO UPDATE SET customer_name = excluded.customer_name;
    DELETE FROM customers WHERE source = 'bulk' AND customer_name LIKE '%5';
END
$$;

CREATE FUNCTION pg_temp.snapshot() RETURNS jsonb LANGUAGE sql AS $$
SELECT jsonb_build_object(
    'customers', (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.id) FROM customers c),
    'keys', (SELECT jsonb_agg(jsonb_build_array(customer_id, company_id, key_type, key_value, normalized_value)
                              ORDER BY customer_id, key_type, key_value) FROM customer_matching_keys),
    'audit', (SELECT jsonb_agg(jsonb_build_array(table_name, record_id, company_id, operation, old_data, new_data,
                                                 changed_fields, changed_by_user_id, changed_at) ORDER BY id)
                FROM customer_audit_log),
    'events', (SELECT jsonb_agg(jsonb_build_array(customer_id, company_id, event_type, event_data, created_at)
                                ORDER BY id) FROM customer_events))
$$;

SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'customers'::regclass AND tgname = 'trg_customers_audit_log'
                  AND tgfoid = to_regprocedure('public.log_customer_changes()')) AS have_reference \gset

SAVEPOINT before_workload;
\if :have_reference
SELECT pg_temp.workload();
SELECT pg_temp.snapshot()::text AS plpgsql_snapshot \gset
\else
\set plpgsql_snapshot '{}'
\endif
ROLLBACK TO SAVEPOINT before_workload;

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() on public');
SELECT pg_temp.workload();
CREATE TEMP TABLE native AS SELECT pg_temp.snapshot() AS s;
CREATE TEMP TABLE plpgsql AS SELECT :'plpgsql_snapshot'::jsonb AS s;

\if :have_reference
SELECT is((SELECT s->'customers' FROM native), (SELECT s->'customers' FROM plpgsql), 'customers agree');
SELECT is((SELECT s->'keys' FROM native), (SELECT s->'keys' FROM plpgsql), 'matching keys agree');
SELECT is((SELECT s->'audit' FROM native), (SELECT s->'audit' FROM plpgsql), 'audit rows agree, in order');
SELECT is((SELECT s->'events' FROM native), (SELECT s->'events' FROM plpgsql), 'events agree, in order');
-- and the audit rows of the columns above are the JSON changes only
SELECT is((SELECT jsonb_agg(e->6 ORDER BY o) FROM native, jsonb_array_elements(s->'audit') WITH ORDINALITY a (e, o)
            WHERE e->6 ?| ARRAY['nick', 'alt_email', 'prefs', 'quiet', 'score']),
          '[["alt_email", "nick", "prefs", "quiet", "score"], ["nick"], ["alt_email"], ["quiet"]]'::jsonb,
          'a column changed when its JSON changed: case under a case-insensitive collation and citext, an equal interval written differently; not json reordered, not numeric rescaled');
\else
SELECT skip('reference/02_plpgsql_triggers.sql is not loaded in this template', 5);
\endif

SELECT * FROM finish();
ROLLBACK;

-- crm_native.verify_schema() and install()'s warnings (src/sql/80_observe.sql)
-- on the reference schema and on a damaged copy: an index dropped, one
-- re-created with another predicate, one renamed, the matching-keys index
-- replaced by the seed's original (not leading with company_id), a trigger
-- disabled, a foreign key without its index. Every fix it proposes is then
-- run, and the damaged copy verifies clean.
\set VERBOSITY terse
\getenv abs_srcdir PG_ABS_SRCDIR
\set schema_file :abs_srcdir '/reference/01_schema.sql'

-- The reference schema (public), before install(): the 28 indexes are there,
-- the six triggers are the plpgsql ones, and the foreign keys of the
-- reference that no index leads with are listed.
SELECT kind, status, count(*) FROM crm_native.verify_schema() GROUP BY 1, 2 ORDER BY 1, 2;
SELECT object, kind, status, fix FROM crm_native.verify_schema() WHERE status <> 'ok';
SELECT count(*) AS inventory FROM crm_native.expected_index;

-- install() on the complete schema warns about nothing; the triggers are native.
SET client_min_messages = warning;
SELECT count(*) AS native_triggers FROM crm_native.install() WHERE implementation = 'native';
RESET client_min_messages;
SELECT object, status, detail FROM crm_native.verify_schema() WHERE kind = 'trigger';

-- A damaged copy of the reference schema.
CREATE SCHEMA damaged;
SET client_min_messages = warning;
SET search_path = damaged, public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET search_path;
RESET client_min_messages;
DROP INDEX damaged.idx_customers_tags;                                  -- dropped
DROP INDEX damaged.idx_customers_email;                                 -- another predicate, same name
CREATE INDEX idx_customers_email ON damaged.customers (company_id, customer_email) WHERE customer_email IS NOT NULL;
ALTER INDEX damaged.idx_customers_lifecycle RENAME TO lifecycle_by_company;  -- renamed: still ok
DROP INDEX damaged.idx_customers_phone;                                 -- another predicate, another name
CREATE INDEX phone_lookup ON damaged.customers (company_id, customer_phone);
DROP INDEX damaged.idx_matching_keys_normalized;                        -- the seed's original index 14
CREATE INDEX idx_matching_keys_seed ON damaged.customer_matching_keys (key_type, normalized_value);
-- an index left invalid (as a failed CREATE INDEX CONCURRENTLY leaves it)
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'damaged.idx_audit_log_user'::regclass;
DROP INDEX damaged.idx_merge_log_target;                                -- and one dropped ...
CREATE INDEX idx_merge_log_target ON damaged.customer_merge_log (target_customer_id);  -- ... and back: ok
DROP INDEX damaged.idx_customer_events_company;                         -- a foreign key without its index
ALTER TABLE damaged.customer_events DROP CONSTRAINT customer_events_company_id_fkey;   -- (and the FK back, named)
ALTER TABLE damaged.customer_events ADD CONSTRAINT events_company FOREIGN KEY (company_id) REFERENCES damaged.companies (id);

-- install() warns for what the triggers rely on, and still installs.
SELECT count(*) AS native_triggers FROM crm_native.install('damaged') WHERE implementation = 'native';
ALTER TABLE damaged.customers DISABLE TRIGGER trg_customers_audit_log;  -- a trigger disabled

SELECT object, kind, status, detail, fix FROM crm_native.verify_schema('damaged')
 WHERE status <> 'ok' AND kind <> 'foreign key index';
SELECT object, status, detail, fix FROM crm_native.verify_schema('damaged')
 WHERE kind = 'foreign key index' AND object IN ('customer_events.events_company', 'users.users_company_id_fkey');
-- the renamed index counts, under its new name
SELECT object, status, detail FROM crm_native.verify_schema('damaged') WHERE object = 'customers.idx_customers_lifecycle';

-- Run every proposed fix (one statement at a time: CONCURRENTLY runs
-- outside a transaction block; an index of the name taken is dropped first;
-- a fix proposed twice runs once).
SELECT f FROM (
    SELECT s.f, min(v.o * 100 + s.p) AS first
      FROM crm_native.verify_schema('damaged') WITH ORDINALITY AS v (object, kind, status, detail, fix, o),
           regexp_split_to_table(v.fix, '; ') WITH ORDINALITY AS s (f, p)
     WHERE v.status <> 'ok' GROUP BY s.f) x
 ORDER BY first \gexec
SELECT kind, status, count(*) FROM crm_native.verify_schema('damaged') GROUP BY 1, 2 ORDER BY 1, 2;

-- A column missing or of another type, and a table missing.
ALTER TABLE damaged.customers DROP COLUMN merged_into_customer_id CASCADE;
ALTER TABLE damaged.customer_metrics ALTER COLUMN total_views TYPE numeric;
SELECT object, kind, status, detail, fix FROM crm_native.verify_schema('damaged')
 WHERE status <> 'ok' ORDER BY kind, object;
DROP TABLE damaged.customer_merge_log;
SELECT object, status, detail, fix FROM crm_native.verify_schema('damaged') WHERE object LIKE 'customer_merge_log.%';

-- an unknown schema is an error
SELECT * FROM crm_native.verify_schema('no_such_schema');

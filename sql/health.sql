-- crm_native.health() (src/sql/80_observe.sql): one row per check. The test
-- cluster does not preload crm_native, so the trigger p99 check is
-- 'unknown' here (test/run.d/trigger_stats.sh checks it with the statistics).
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT count(*) AS native_triggers FROM crm_native.install() WHERE implementation = 'native';
RESET client_min_messages;
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
SELECT '00000000-0000-0000-0000-00000000000a', 'Customer ' || (i % 3), 'customer' || (i % 3) || '@example.com',
       '+1 555 000 000' || (i % 3), 's' || i
  FROM generate_series(1, 12) i;
INSERT INTO "VC Usage" (company_id, session_id) VALUES ('00000000-0000-0000-0000-00000000000a', 'no contact');

-- The reference schema, installed, after a clean workload: only the
-- reference's foreign keys without an index are reported.
SELECT check_name, status, value FROM crm_native.health();
SELECT detail FROM crm_native.health() WHERE check_name LIKE 'customer_metrics%' OR check_name LIKE 'trigger%';

-- A role that may read the application's tables but not trigger_stats
-- (every database's statistics) gets 'unknown' with the reason; before,
-- health() failed as a whole with "permission denied for view".
CREATE ROLE crm_monitor;
GRANT USAGE ON SCHEMA crm_native TO crm_monitor;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO crm_monitor;
SET ROLE crm_monitor;
SELECT status, detail FROM crm_native.health() WHERE check_name LIKE 'trigger%';
-- Row-level security hides every customer and chat from it (no tenant
-- set): the data checks say 'unknown', not 'ok' over nothing (they said
-- "0 customers whose metrics row differs ... all 0 customers checked";
-- found by an independent tester).
SELECT check_name, status, detail FROM crm_native.health()
 WHERE check_name IN ('customer_metrics equal to a recomputation', 'matching keys equal to the customers'' current values',
                      'chats left unlinked');
RESET ROLE;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM crm_monitor;
REVOKE USAGE ON SCHEMA crm_native FROM crm_monitor;
DROP ROLE crm_monitor;

-- The sample size is stated.
SELECT value, detail FROM crm_native.health(metrics_sample => 2) WHERE check_name LIKE 'customer_metrics%';
SELECT value, detail FROM crm_native.health(metrics_sample => NULL) WHERE check_name LIKE 'matching keys%';

-- Damage: a metrics row off by one, a matching key that no longer matches
-- its customer, a chat stored unlinked (triggers bypassed), the metrics key
-- gone (its primary key dropped), a trigger disabled.
UPDATE customer_metrics SET total_views = total_views + 1
 WHERE customer_id = (SELECT id FROM customers WHERE customer_name = 'Customer 1');
UPDATE customer_matching_keys SET normalized_value = 'someone.else@example.com'
 WHERE key_type = 'email' AND customer_id = (SELECT id FROM customers WHERE customer_name = 'Customer 2');
SET session_replication_role = replica;
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'stray@example.com', 'stray');
-- (and a name over the key bound beside an email, an email over the key
-- bound beside a phone: linked by the email, by the phone, so reported too)
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', repeat('n', 70000), 'long.name@example.com', NULL, 'long name'),
       ('00000000-0000-0000-0000-00000000000a', NULL, repeat('x', 3000) || '@example.com', '+1 555 010 9999', 'long email');
-- (and ones whose contact data gives no key, or only an email over the key
-- bound beside a name (the sync skips the chat with a WARNING): never
-- linked, not reported)
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', '', ' ', E'\t', 'blank'),
       ('00000000-0000-0000-0000-00000000000a', E'\u200B', NULL, 'abc', 'junk'),
       ('00000000-0000-0000-0000-00000000000a', 'Named', repeat('y', 3000) || '@example.com', NULL, 'long email, name');
RESET session_replication_role;
ALTER TABLE customers DISABLE TRIGGER trg_customers_lifecycle_tracking;
SELECT check_name, status, value FROM crm_native.health(metrics_sample => NULL);
SELECT check_name, detail FROM crm_native.health(metrics_sample => NULL)
 WHERE status NOT IN ('ok', 'unknown') AND check_name NOT LIKE '%foreign key%';
ALTER TABLE customer_metrics DROP CONSTRAINT idx_customer_metrics_id;
SELECT check_name, status, value FROM crm_native.health() WHERE check_name LIKE 'schema%';

-- the repairs it names make it ok again
-- (rebuild_metrics() needs the metrics key too)
SELECT crm_native.rebuild_metrics() > 0 AS metrics_rebuilt;
ALTER TABLE customer_metrics ADD CONSTRAINT idx_customer_metrics_id PRIMARY KEY (customer_id);
ALTER TABLE customers ENABLE TRIGGER trg_customers_lifecycle_tracking;
SELECT crm_native.rebuild_metrics() > 0 AS metrics_rebuilt, crm_native.rebuild_matching_keys() > 0 AS keys_rebuilt;
-- an UPDATE of its contact data syncs the unlinked chat
UPDATE "VC Usage" SET customer_email = customer_email WHERE session_id IN ('stray', 'long name', 'long email');
SELECT check_name, status, value FROM crm_native.health() WHERE status NOT IN ('ok', 'unknown');

-- errors
SELECT * FROM crm_native.health('no_such_schema');
SELECT * FROM crm_native.health(metrics_sample => 0);
-- a read-only transaction (as on a hot standby, or a monitoring role with
-- default_transaction_read_only) cannot create the sample's temporary
-- table: the data checks say so, the other checks run (health() used to
-- fail as a whole; found by an independent tester)
BEGIN READ ONLY;
SELECT check_name, status FROM crm_native.health() WHERE check_name NOT LIKE 'trigger p99%';
ROLLBACK;
-- twice in one transaction: the sample table is reused, quietly (a NOTICE
-- "already exists" before)
BEGIN;
SELECT count(*) > 0 AS checked FROM crm_native.health();
SELECT count(*) > 0 AS checked FROM crm_native.health();
COMMIT;
-- the lock key is the owner's alone: a grant made on it (here, by default
-- privileges in force when the extension was created, which its script
-- revokes; or later) is an error
SELECT check_name, status, value FROM crm_native.health() WHERE check_name LIKE 'lock key%';
GRANT SELECT ON crm_native.lock_secret TO crm_app;
SELECT check_name, status, value, detail FROM crm_native.health() WHERE check_name LIKE 'lock key%';
REVOKE SELECT ON crm_native.lock_secret FROM crm_app;

-- crm_native.customer_sync() under a query cancel in the middle of a
-- 100,000-row bulk insert, and the bound on the locks a bulk import holds.
SET client_min_messages = warning;
-- (install()'s warnings about other features' triggers are not this test's)
SET client_min_messages = error;
SELECT count(*) > 0 AS installed FROM crm_native.install();
SET client_min_messages = warning;
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');

-- 100,000 new customers at once, cancelled by statement_timeout long before
-- the end (each row creates a customer, its keys, audit row and event).
SET statement_timeout = '2s';
\set VERBOSITY terse
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
SELECT '00000000-0000-0000-0000-00000000000a', 'Customer ' || g, 'c' || g || '@example.com',
       '+1555' || lpad(g::text, 7, '0'), 'bulk'
  FROM generate_series(1, 100000) g;
RESET statement_timeout;
\set VERBOSITY default

-- It was cancelled in the middle: the trigger had already run for many rows
-- (each row draws an id from the sequence before its BEFORE trigger runs).
SELECT last_value > 100 AS cancelled_mid_way, last_value < 100000 AS before_the_end
  FROM "VC Usage_id_seq";
-- No partial state.
SELECT (SELECT count(*) FROM "VC Usage") AS chats, (SELECT count(*) FROM customers) AS customers,
       (SELECT count(*) FROM customer_events) AS events, (SELECT count(*) FROM customer_matching_keys) AS keys,
       (SELECT count(*) FROM customer_audit_log) AS audit;
-- No lock survives the cancelled transaction.
SELECT count(*) AS advisory_locks_left FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
-- The backend is alive and the trigger works.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000000a', 'After', 'after@example.com', 's');
SELECT customer_name, source FROM customers;

-- A bulk import holds a bounded number of locks: crm_native.sync_key_lock_limit
-- key locks (256 by default), then one bulk lock.
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
SELECT '00000000-0000-0000-0000-00000000000a', 'Bulk ' || g, 'b' || g || '@example.com',
       '+1666' || lpad(g::text, 7, '0'), 'bulk'
  FROM generate_series(1, 2000) g;
SELECT objsubid, count(*) AS locks, max(mode) AS mode
  FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
 GROUP BY objsubid ORDER BY objsubid;
SELECT count(*) AS customers, count(DISTINCT v.customer_id) AS linked_to
  FROM customers c JOIN "VC Usage" v ON v.customer_id = c.id WHERE v.customer_name LIKE 'Bulk %';
COMMIT;

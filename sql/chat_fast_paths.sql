-- The two short paths of a single chat, counted by the table reads they
-- make (pg_stat_xact_user_tables: each index or sequential scan of a table;
-- each block reports the difference over its transaction):
--  * a returning customer's chat that brings nothing new locks the probe's
--    single key holder directly (customer_sync.cpp, touch_holder; SELECT ...
--    FOR NO KEY UPDATE, the customer row is not written: no UPDATE, no audit row):
--    customers is read twice, by that lock and by the chat's own foreign-key
--    check. Without the short path the same chat reads the holder first (3).
--  * a new customer's first metrics row is inserted without a locking read
--    first (metrics.cpp, created_in_this_transaction): customer_metrics is
--    read once, by the INSERT's ON CONFLICT check. The general path locks
--    first (2 reads).
-- Each block also shows the rows, which are the same on either path.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A');
CREATE FUNCTION table_reads(t regclass) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = t
$$;
CREATE FUNCTION chat(n text, session text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
  VALUES ('11111111-1111-1111-1111-111111111111', 'Customer ' || n, 'c' || n || '@example.com', session)
$$;

-- A new customer's chat: one read of customer_metrics.
BEGIN;
SELECT table_reads('customer_metrics') AS m0 \gset
SELECT chat('1', 's-1');
SELECT table_reads('customer_metrics') - :m0 AS metrics_reads_new_customer;
SELECT total_conversations, total_sessions FROM customer_metrics;
COMMIT;

-- The same customer again: customers is read twice, and not written.
BEGIN;
SELECT table_reads('customers') AS c0 \gset
SELECT chat('1', 's-2');
SELECT table_reads('customers') - :c0 AS customer_reads_returning;
SELECT count(*) AS customers, count(*) FILTER (WHERE updated_at = now()) AS touched FROM customers;
SELECT total_conversations, total_sessions FROM customer_metrics;
SELECT count(*) AS audit_updates FROM customer_audit_log WHERE operation = 'UPDATE';
COMMIT;

-- A returning chat that brings a phone the customer lacks takes the general
-- path after the short one found nothing to touch, then takes the key locks
-- a customer's creator takes (the phone is a new key for this customer) and
-- looks again: 8 reads, the phone filled.
BEGIN;
SELECT table_reads('customers') AS c0 \gset
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Customer 1', 'c1@example.com', '+1 555 010 0001', 's-3');
SELECT table_reads('customers') - :c0 AS customer_reads_filling;
SELECT customer_phone FROM customers;
SELECT total_conversations, total_sessions FROM customer_metrics;
COMMIT;

-- A customer the application inserted itself (not the sync): its first chat
-- locks before it inserts the metrics row (2 reads).
INSERT INTO customers (company_id, customer_name, customer_email)
VALUES ('11111111-1111-1111-1111-111111111111', 'Customer 2', 'c2@example.com');
BEGIN;
SELECT table_reads('customer_metrics') AS m0 \gset
SELECT chat('2', 's-4');
SELECT table_reads('customer_metrics') - :m0 AS metrics_reads_app_customer;
SELECT c.customer_name, m.total_conversations FROM customer_metrics m JOIN customers c ON c.id = m.customer_id
 ORDER BY 1;
COMMIT;

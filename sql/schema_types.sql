-- The column types install() accepts are the ones every trigger path takes:
-- a "VC Usage" with an integer id, a varchar session_id and a smallint
-- view_count (all in crm_native.required_column) still gets the single-chat
-- metrics path (two reads of customer_metrics for a returning customer's chat:
-- lock + update; the general path takes three), and exact metrics.
SET client_min_messages = warning;
ALTER TABLE "VC Usage" ALTER COLUMN id TYPE integer, ALTER COLUMN session_id TYPE varchar(64),
                       ALTER COLUMN view_count TYPE smallint;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A');
CREATE FUNCTION table_reads(t regclass) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = t
$$;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
VALUES ('11111111-1111-1111-1111-111111111111', 'c1@example.com', 's-1', 2);
BEGIN;
SELECT table_reads('customer_metrics') AS m0 \gset
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
VALUES ('11111111-1111-1111-1111-111111111111', 'c1@example.com', 's-2', 3);
SELECT table_reads('customer_metrics') - :m0 AS metrics_reads_returning;
COMMIT;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
VALUES ('11111111-1111-1111-1111-111111111111', 'c1@example.com', 's-2', 1);
SELECT total_conversations, total_sessions, total_views FROM customer_metrics;
SELECT * FROM crm_native.verify_metrics();

-- The extremes probes of a customer's history (first and last interaction,
-- after the chat that held one goes) read its ends, whatever indexes the
-- application added: an index on (company_id, customer_id) without
-- created_at, offered to a plan made on the empty table, sorted the whole
-- history for each probe (80,000 entries read per delete at 20,000 chats;
-- found by an independent tester). Counted, not timed (metrics_bounded.sql
-- for the other cases).
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
INSERT INTO companies (id, name) VALUES ('11111111-1111-4111-8111-111111111111', 'A');
CREATE INDEX app_vc_company_customer ON "VC Usage" (company_id, customer_id);
ALTER TABLE "VC Usage" SET (autovacuum_enabled = off);
CREATE FUNCTION pg_temp.reads() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(t.seq_tup_read + coalesce(t.idx_tup_fetch, 0)
                      + (SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)
                           FROM pg_index i WHERE i.indrelid = t.relid)), 0)::bigint
    FROM pg_stat_xact_user_tables t
   WHERE t.relname IN ('VC Usage', 'customers', 'customer_matching_keys', 'customer_metrics')
$$;
-- plans made on the empty tables: single chats, a delete of the latest, an update
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'Warm', 'warm@example.com', 'w1', now());
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'Warm', 'warm@example.com', 'w2', now());
DELETE FROM "VC Usage" WHERE id = (SELECT max(id) FROM "VC Usage");
UPDATE "VC Usage" SET session_id = 'w3' WHERE id = (SELECT max(id) FROM "VC Usage");
-- a customer with 20,000 chats
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
SELECT '11111111-1111-4111-8111-111111111111', 'Big', 'big@example.com', 's' || i,
       timestamptz '2024-01-01' + i * interval '1 minute'
  FROM generate_series(1, 20000) i;
-- every plan made again on the grown, never-analyzed table (the table's
-- relcache entry invalidated, as by any ALTER TABLE, or a session's first
-- temporary table)
ALTER TABLE "VC Usage" SET (autovacuum_enabled = off);
-- ten deletes of its latest chat
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
DO $$ BEGIN FOR k IN 1..10 LOOP
  DELETE FROM "VC Usage" WHERE id = (SELECT max(id) FROM "VC Usage" WHERE customer_email = 'big@example.com');
END LOOP; END $$;
SELECT (pg_temp.reads() - :r0) / 10 < 100 AS latest_chat_delete_bounded;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

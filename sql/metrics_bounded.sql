-- The metrics triggers' work per chat is bounded whatever the customer's
-- history, the statement's shape, the application's extra indexes or the
-- plans made on empty tables; counted (table rows and index entries read,
-- pg_stat_xact_*), not timed. Each case an independent tester found reading
-- a whole history or a whole session per chat; after each, verify_metrics()
-- (the full recomputation) finds no difference.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
INSERT INTO companies (id, name) VALUES ('11111111-1111-4111-8111-111111111111', 'A');
-- indexes an application may add: on session_id alone, on the company and
-- customer without created_at
CREATE INDEX app_vc_session ON "VC Usage" (session_id);
CREATE INDEX app_vc_company_customer ON "VC Usage" (company_id, customer_id);
ALTER TABLE "VC Usage" SET (autovacuum_enabled = off);
ALTER TABLE customers SET (autovacuum_enabled = off);
ALTER TABLE customer_metrics SET (autovacuum_enabled = off);
-- what this transaction has read from the CRM tables so far
CREATE FUNCTION pg_temp.reads() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(t.seq_tup_read + coalesce(t.idx_tup_fetch, 0)
                      + (SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)
                           FROM pg_index i WHERE i.indrelid = t.relid)), 0)::bigint
    FROM pg_stat_xact_user_tables t
   WHERE t.relname IN ('VC Usage', 'customers', 'customer_matching_keys', 'customer_metrics')
$$;

-- Every plan made now, on the empty tables (this backend keeps them): single
-- and two-row chats, a chat's delete and update.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-4111-8111-111111111111', 'Warm', 'warm@example.com', 'web');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-4111-8111-111111111111', 'Warm', 'warm@example.com', 'web');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-4111-8111-111111111111', 'Warm', 'warm@example.com', 'web' FROM generate_series(1, 2);
DELETE FROM "VC Usage" WHERE id = (SELECT max(id) FROM "VC Usage");
UPDATE "VC Usage" SET session_id = 'web2' WHERE id = (SELECT max(id) FROM "VC Usage");

-- 1. A session 3,000 other customers' chats share: the session probe reads
--    this customer's chats of it, not the session's (an index on session_id
--    alone, chosen by the plan made on the empty table, read them all).
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-4111-8111-111111111111', 'S ' || i, 's' || i || '@example.com', 'web'
  FROM generate_series(1, 3000) i;
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
DO $$ BEGIN FOR k IN 2981..3000 LOOP  -- the last in the session's index order
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
  VALUES ('11111111-1111-4111-8111-111111111111', 'S ' || k, 's' || k || '@example.com', 'web');
END LOOP; END $$;
SELECT (pg_temp.reads() - :r0) / 20 < 60 AS session_chat_bounded;
COMMIT;

-- A customer with 20,000 chats.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
SELECT '11111111-1111-4111-8111-111111111111', 'Big', 'big@example.com', 'b' || i,
       timestamptz '2024-01-01' + i * interval '1 minute'
  FROM generate_series(1, 20000) i;

-- 2. Deletes of its latest chat: the extremes probes read the ends of its
--    history (an index on (company_id, customer_id) without created_at let
--    a plan sort the whole history for each: 80,000 entries per delete),
--    with every plan made again on the grown, never-analyzed table (the
--    table's relcache entry invalidated, as by any ALTER TABLE or a
--    session's first temporary table).
ALTER TABLE "VC Usage" SET (autovacuum_enabled = off);
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
DO $$ BEGIN FOR k IN 1..10 LOOP
  DELETE FROM "VC Usage" WHERE id = (SELECT max(id) FROM "VC Usage" WHERE customer_email = 'big@example.com');
END LOOP; END $$;
SELECT (pg_temp.reads() - :r0) / 10 < 100 AS latest_chat_delete_bounded;
COMMIT;

-- 3. An upsert and a MERGE that only insert: one change of the table each,
--    the delta path (the upsert's UPDATE trigger, firing first with no row,
--    sent the INSERT trigger to the whole-history recomputation).
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
DO $$ BEGIN FOR k IN 1..10 LOOP
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
  VALUES ('11111111-1111-4111-8111-111111111111', 'Big', 'big@example.com', 'u' || k)
  ON CONFLICT (id) DO UPDATE SET ai_response = EXCLUDED.ai_response;
END LOOP; END $$;
SELECT (pg_temp.reads() - :r0) / 10 < 60 AS insert_only_upsert_bounded;
SELECT pg_temp.reads() AS r0 \gset
DO $$ BEGIN FOR k IN 1..10 LOOP
  MERGE INTO "VC Usage" v
  USING (SELECT '11111111-1111-4111-8111-111111111111'::uuid AS company_id, 'big@example.com' AS email, 'g' || k AS s) x
     ON v.session_id = x.s AND v.customer_email = x.email
   WHEN MATCHED THEN UPDATE SET view_count = v.view_count + 1
   WHEN NOT MATCHED THEN INSERT (company_id, customer_name, customer_email, session_id) VALUES (x.company_id, 'Big', x.email, x.s);
END LOOP; END $$;
SELECT (pg_temp.reads() - :r0) / 10 < 60 AS insert_only_merge_bounded;
COMMIT;

-- 4. Chats after rolled-back subtransactions that touched no chat (a loop
--    catching an error per row): every rollback sent the next chat to the
--    whole-history recomputation.
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
DO $$ BEGIN FOR k IN 1..10 LOOP
  BEGIN PERFORM 1 / 0; EXCEPTION WHEN division_by_zero THEN NULL; END;
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
  VALUES ('11111111-1111-4111-8111-111111111111', 'Big', 'big@example.com', 'e' || k);
END LOOP; END $$;
SELECT (pg_temp.reads() - :r0) / 10 < 60 AS chat_after_caught_error_bounded;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- 5. Rolled-back subtransactions that did change chats put the count of
--    changes and its baseline back together: exact after each shape.
CREATE VIEW big AS
  SELECT m.total_conversations AS n, m.total_sessions AS s, m.last_interaction_at > '2030-01-01' AS late
    FROM customer_metrics m JOIN customers c ON c.id = m.customer_id WHERE c.customer_email = 'big@example.com';
SELECT * FROM big;
-- a) nested savepoints: the inner one released, the outer one rolled back
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'x1');
SAVEPOINT a;
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'x2');
SAVEPOINT b;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'x3', '2031-01-01');
RELEASE b;
DELETE FROM "VC Usage" WHERE session_id = 'x1';
ROLLBACK TO a;
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'x4');
SELECT * FROM big;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- b) a statement's changes and its trigger in a subtransaction that rolls
--    back after the trigger ran, then more in the parent
BEGIN;
SAVEPOINT a;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'y1', '2032-01-01');
UPDATE "VC Usage" SET session_id = 'y2' WHERE session_id = 'x4';
ROLLBACK TO a;
DELETE FROM "VC Usage" WHERE session_id = 'x2';
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'y3');
SELECT * FROM big;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- c) in exception blocks, nested, the inner one caught after its chat
--    statement and trigger ran, the outer one committed
DO $$
BEGIN
  BEGIN
    INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'z1');
    BEGIN
      DELETE FROM "VC Usage" WHERE session_id = 'y3';
      INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'z2', '2033-01-01');
      PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
    INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'z3');
  END;
  INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 'z4');
END $$;
SELECT * FROM big;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- d) a TRUNCATE rolled back to a savepoint (the statistics put the counts
--    from before it back), then chats
BEGIN;
SAVEPOINT a;
TRUNCATE "VC Usage";
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 't1');
ROLLBACK TO a;
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES ('11111111-1111-4111-8111-111111111111', 'big@example.com', 't2');
DELETE FROM "VC Usage" WHERE session_id = 'z4';
SELECT * FROM big;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- e) a TRUNCATE in a savepoint that is released: the statistics then
--    replace the parent's counts with the savepoint's, and the count falls
--    by the chat inserted before it. A chat written with the triggers off
--    (uncounted: the next statement of the transaction must recompute)
--    balanced the fall, and the next chat took the delta path, one
--    conversation short (found by an independent review).
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@example.com', 's1', '2024-01-01');
SAVEPOINT a;
TRUNCATE "VC Usage";
RELEASE a;
SET LOCAL session_replication_role = replica;
INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, session_id, created_at)
SELECT '11111111-1111-4111-8111-111111111111', id, 'Ann', 'ann@example.com', 's1', '2024-01-02'
  FROM customers WHERE customer_email = 'ann@example.com';
SET LOCAL session_replication_role = origin;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@example.com', 's1', '2024-01-03');
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- f) 33 nested savepoints, each with a chat; the innermost rolled back,
--    the next released, one more rolled back; then an uncounted chat and a
--    counted one (a stack of 32 saved states lost the 33rd, and the last
--    rollback restored a state that still counted its chat; found by an
--    independent review)
BEGIN;
SELECT format('SAVEPOINT s%s', i),
       format($f$INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, created_at)
                 VALUES ('11111111-1111-4111-8111-111111111111', 'Deep', 'deep@example.com', 'd', '2024-09-01'::timestamptz + %s * interval '1 hour')$f$, i)
  FROM generate_series(1, 33) i \gexec
ROLLBACK TO s33;
RELEASE s32;
SAVEPOINT x;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-4111-8111-111111111111', 'Deep', 'deep@example.com', 'x');
ROLLBACK TO x;
SET LOCAL session_replication_role = replica;
INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, session_id, created_at)
SELECT '11111111-1111-4111-8111-111111111111', id, 'Deep', 'deep@example.com', 'd', '2024-08-01'
  FROM customers WHERE customer_email = 'deep@example.com';
SET LOCAL session_replication_role = origin;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-4111-8111-111111111111', 'Deep', 'deep@example.com', 'y');
COMMIT;
SELECT m.total_conversations FROM customer_metrics m JOIN customers c ON c.id = m.customer_id
 WHERE c.customer_email = 'deep@example.com';
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- customer_metrics stays exact when one query changes "VC Usage" more than
-- once, or a statement changes it inside another that did: every statement
-- trigger of a query fires after all of its changes, and a nested
-- statement's trigger fires before the enclosing statement's, so the
-- delta's probes would read changes not yet counted (metrics.cpp, "alone").
-- Each block is a shape an independent tester found wrong (sessions lost or
-- doubled, conversations doubled); after each, verify_metrics() (the full
-- recomputation, what the plpgsql trigger stores) finds no difference.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('11111111-1111-4111-8111-111111111111', 'A');
CREATE FUNCTION reset_chats() RETURNS void LANGUAGE sql AS $$
  DELETE FROM "VC Usage";
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, user_message, view_count, created_at) VALUES
   ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@x.com', 's1', 'm1', 1, '2024-01-01'),
   ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@x.com', 's2', 'm2', 2, '2024-01-02'),
   ('11111111-1111-4111-8111-111111111111', 'Bob', 'bob@x.com', 's3', 'm3', 3, '2024-01-03'),
   ('11111111-1111-4111-8111-111111111111', 'Bob', 'bob@x.com', 's3', 'm4', 4, '2024-01-04');
$$;
CREATE VIEW shown AS
  SELECT c.customer_email, m.total_conversations AS n, m.total_sessions AS s, m.total_views AS v,
         m.first_interaction_at::date AS first, m.last_interaction_at::date AS last
    FROM customer_metrics m JOIN customers c ON c.id = m.customer_id ORDER BY 1;

-- a) a writable CTE that deletes Bob's chats and inserts them again
SELECT reset_chats();
WITH d AS (DELETE FROM "VC Usage" WHERE customer_email = 'bob@x.com'
           RETURNING company_id, customer_id, customer_name, customer_email, session_id, user_message, view_count, created_at)
INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, session_id, user_message, view_count, created_at)
SELECT * FROM d;
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- b) MERGE that deletes one chat and inserts another
SELECT reset_chats();
CREATE TEMP TABLE incoming (msg text, email text, sess text, drop_it bool);
INSERT INTO incoming VALUES ('m1', NULL, NULL, true), ('m9', 'ann@x.com', 's1', false);
MERGE INTO "VC Usage" v USING incoming s ON v.user_message = s.msg
WHEN MATCHED AND s.drop_it THEN DELETE
WHEN NOT MATCHED THEN INSERT (company_id, customer_email, session_id, user_message, view_count, created_at)
  VALUES ('11111111-1111-4111-8111-111111111111', s.email, s.sess, s.msg, 1, '2024-06-01');
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- c) an upsert: one row updated (its session moves), one inserted
SELECT reset_chats();
INSERT INTO "VC Usage" (id, company_id, customer_email, session_id, user_message, view_count, created_at)
VALUES ((SELECT id FROM "VC Usage" WHERE user_message = 'm3'), '11111111-1111-4111-8111-111111111111', 'bob@x.com', 's9', 'm3', 3, '2024-01-03'),
       (1000, '11111111-1111-4111-8111-111111111111', 'bob@x.com', 's9', 'm5', 1, '2024-01-05')
ON CONFLICT (id) DO UPDATE SET session_id = EXCLUDED.session_id;
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- d) an application's AFTER ROW trigger that deletes the customer's older
-- chats of the session: a nested DELETE inside the INSERT
SELECT reset_chats();
CREATE FUNCTION app_dedup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "VC Usage" WHERE session_id = NEW.session_id AND customer_id = NEW.customer_id AND id <> NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER app_dedup AFTER INSERT ON "VC Usage" FOR EACH ROW EXECUTE FUNCTION app_dedup();
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, user_message, view_count, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@x.com', 's1', 'm6', 1, '2024-07-01');
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
DROP TRIGGER app_dedup ON "VC Usage";

-- e) a writable CTE that inserts a chat and moves another chat's session
SELECT reset_chats();
WITH ins AS (INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, user_message, view_count, created_at)
             VALUES ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@x.com', 's9', 'm6', 1, '2024-01-06') RETURNING id),
     upd AS (UPDATE "VC Usage" SET session_id = 's9' WHERE user_message = 'm1' RETURNING id)
SELECT count(*) FROM ins, upd;
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- f) a function called by the INSERT's SELECT that deletes the customer's
-- chat the INSERT's rows share a session with
SELECT reset_chats();
CREATE FUNCTION drop_chat(msg text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN DELETE FROM "VC Usage" WHERE user_message = msg; RETURN 's2'; END $$;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, user_message, view_count, created_at)
SELECT '11111111-1111-4111-8111-111111111111', 'Ann', 'ann@x.com', drop_chat('m2'), 'm' || i, 1, ('2024-08-0' || i)::timestamptz
  FROM generate_series(7, 8) i;
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- g) after a subtransaction abort (the aborted changes leave the count),
-- an upsert in the same transaction
SELECT reset_chats();
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'ann@x.com', 's5', 'm10', '2024-09-01');
SAVEPOINT sp;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'ann@x.com', 's6', 'm11', '2024-09-02');
ROLLBACK TO SAVEPOINT sp;
INSERT INTO "VC Usage" (id, company_id, customer_email, session_id, user_message, created_at)
VALUES ((SELECT id FROM "VC Usage" WHERE user_message = 'm10'), '11111111-1111-4111-8111-111111111111', 'ann@x.com', 's7', 'm10', '2024-09-01'),
       (2000, '11111111-1111-4111-8111-111111111111', 'ann@x.com', 's2', 'm12', '2024-09-03')
ON CONFLICT (id) DO UPDATE SET session_id = EXCLUDED.session_id;
COMMIT;
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- h) once a trigger recomputed in the middle of an enclosing statement, the
-- enclosing statement's own triggers recompute too: here an application's
-- BEFORE UPDATE trigger updates another of the customer's chats (its
-- trigger recomputes the customer with the outer UPDATE's first row already
-- changed), and the outer query's DELETE leaves the counts looking balanced
SELECT reset_chats();
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, user_message, view_count, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'Ann', 'ann@x.com', 's4', 'c', 1, '2024-01-05');
CREATE FUNCTION app_poke() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.user_message = 'poke' THEN
    UPDATE "VC Usage" SET view_count = view_count + 100 WHERE user_message = 'c';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER app_poke BEFORE UPDATE ON "VC Usage" FOR EACH ROW EXECUTE FUNCTION app_poke();
WITH d AS (DELETE FROM "VC Usage" WHERE user_message = 'm4' RETURNING 1)
UPDATE "VC Usage" SET view_count = view_count + 10,
                      user_message = CASE user_message WHEN 'm2' THEN 'poke' ELSE user_message END
 WHERE user_message IN ('m1', 'm2');
DROP TRIGGER app_poke ON "VC Usage";
SELECT * FROM shown;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- i) an application's trigger on customer_metrics that writes a chat for
-- another customer of the same statement, while that statement is writing
-- its rows: the row it read before is recomputed, not overwritten
SELECT reset_chats();
INSERT INTO customers (id, company_id, customer_name) VALUES
  ('0b000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'B'),
  ('f0000000-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'House');
INSERT INTO "VC Usage" (company_id, customer_id, session_id, user_message, created_at) VALUES
  ('11111111-1111-4111-8111-111111111111', '0b000000-0000-4000-8000-000000000001', 'b1', 'b-1', '2024-02-01'),
  ('11111111-1111-4111-8111-111111111111', '0b000000-0000-4000-8000-000000000001', 'b2', 'b-2', '2024-02-02'),
  ('11111111-1111-4111-8111-111111111111', 'f0000000-0000-4000-8000-000000000002', 'h1', 'h-1', '2024-02-03');
CREATE FUNCTION app_milestone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.customer_id = '0b000000-0000-4000-8000-000000000001' AND NEW.total_conversations = 3 THEN
    INSERT INTO "VC Usage" (company_id, customer_id, session_id, user_message, created_at)
    VALUES (NEW.company_id, 'f0000000-0000-4000-8000-000000000002', 'milestone', 'h-milestone', '2024-02-10');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER app_milestone AFTER INSERT OR UPDATE ON customer_metrics FOR EACH ROW EXECUTE FUNCTION app_milestone();
INSERT INTO "VC Usage" (company_id, customer_id, session_id, user_message, created_at) VALUES
  ('11111111-1111-4111-8111-111111111111', '0b000000-0000-4000-8000-000000000001', 'b3', 'b-3', '2024-02-04'),
  ('11111111-1111-4111-8111-111111111111', 'f0000000-0000-4000-8000-000000000002', 'h2', 'h-2', '2024-02-05');
DROP TRIGGER app_milestone ON customer_metrics;
SELECT c.customer_name, m.total_conversations AS n, m.total_sessions AS s
  FROM customer_metrics m JOIN customers c ON c.id = m.customer_id
 WHERE c.customer_name IN ('B', 'House') ORDER BY 1;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
DELETE FROM "VC Usage" WHERE customer_id IN ('0b000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000002');

-- A plain statement after all that takes the delta path again: a returning
-- chat reads customer_metrics twice (the single-chat path: lock, update),
-- not once per recomputation plus the chat history.
BEGIN;
SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS m0 FROM pg_stat_xact_user_tables WHERE relid = 'customer_metrics'::regclass \gset
INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message, created_at)
VALUES ('11111111-1111-4111-8111-111111111111', 'ann@x.com', 's1', 'm20', '2024-10-01');
SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) - :m0 AS metrics_reads FROM pg_stat_xact_user_tables WHERE relid = 'customer_metrics'::regclass;
COMMIT;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

-- Only the queries running when a trigger took the exact path stay on it: a
-- plpgsql loop that catches one error (a rolled-back subtransaction) and
-- goes on inserting chats of a customer with a long history recomputes that
-- history once, not for every later chat of the loop (it did until the
-- client's statement ended: 20 recomputations of 1,000 chats here).
INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message, created_at)
  SELECT '11111111-1111-4111-8111-111111111111', 'long@x.com', 'l' || (i % 50), 'long-' || i,
         '2023-01-01'::timestamptz + i * interval '1 hour'
    FROM generate_series(1, 1000) i;
BEGIN;
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS v0 FROM pg_stat_xact_user_tables WHERE relid = '"VC Usage"'::regclass \gset
DO $$
BEGIN
  INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message)
    VALUES ('11111111-1111-4111-8111-111111111111', 'long@x.com', 'l1', 'loop-0');
  BEGIN
    PERFORM 1 / 0;
  EXCEPTION WHEN division_by_zero THEN NULL;
  END;
  FOR i IN 1..20 LOOP
    INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message)
      VALUES ('11111111-1111-4111-8111-111111111111', 'long@x.com', 'l' || i, 'loop-' || i);
  END LOOP;
END $$;
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) - :v0 < 2500 AS history_read_once
  FROM pg_stat_xact_user_tables WHERE relid = '"VC Usage"'::regclass;
COMMIT;
SELECT m.total_conversations FROM customer_metrics m JOIN customers c ON c.id = m.customer_id WHERE c.customer_email = 'long@x.com';
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- A chat key of (id, company_id), which install() accepts, lets companies
-- repeat ids: an UPDATE's old and new versions are paired by id and
-- company_id (paired by id alone, each chat was counted once per company
-- that had its id; found by an independent tester).
INSERT INTO companies (id, name) VALUES ('22222222-2222-4222-8222-222222222222', 'B');
ALTER TABLE "VC Usage" DROP CONSTRAINT "VC Usage_pkey";
ALTER TABLE "VC Usage" ADD CONSTRAINT "VC Usage_pkey" PRIMARY KEY (id, company_id);
SELECT object, status FROM crm_native.verify_schema() WHERE object LIKE '%VC Usage%.id%' OR object = 'VC Usage_pkey';
INSERT INTO "VC Usage" (id, company_id, customer_name, customer_email, session_id, user_message, created_at, view_count) VALUES
  (900001, '11111111-1111-4111-8111-111111111111', 'Ann', 'ann.dup@x.com', 'd1', 'm1', '2020-01-01', 1),
  (900002, '11111111-1111-4111-8111-111111111111', 'Ann', 'ann.dup@x.com', 'd2', 'm2', '2020-01-02', 2),
  (900001, '22222222-2222-4222-8222-222222222222', 'Bob', 'bob.dup@x.com', 'd1', 'm3', '2020-01-03', 3),
  (900002, '22222222-2222-4222-8222-222222222222', 'Bob', 'bob.dup@x.com', 'd3', 'm4', '2020-01-04', 4);
UPDATE "VC Usage" SET view_count = view_count + 10, session_id = 'n' || session_id WHERE id = 900001;
UPDATE "VC Usage" SET created_at = created_at + interval '1 day' WHERE id = 900002;
SELECT c.customer_email, m.total_conversations, m.total_views, m.total_sessions
  FROM customer_metrics m JOIN customers c ON c.id = m.customer_id
 WHERE c.customer_email IN ('ann.dup@x.com', 'bob.dup@x.com') ORDER BY 1;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();

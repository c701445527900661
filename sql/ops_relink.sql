-- CALL crm_native.relink_chats (docs/operations.md): every chat without a
-- customer is linked by the native sync's own rules (matching keys, within
-- its company, creating a customer where the sync would), in committed
-- batches with a NOTICE each; a failed or cancelled run keeps the batches
-- it committed and the next run goes on; refused clearly before install()
-- and for bad input.
SET client_min_messages = notice;
\set VERBOSITY terse
INSERT INTO companies (id, name) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'A'), ('bbbbbbbb-0000-0000-0000-000000000002', 'B');
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000001', 'Ann Lee', 'ann@a.example', '+1 555 123 4567', '2024-01-01');
-- History written without any trigger (before the CRM linked chats).
SET session_replication_role = replica;
INSERT INTO "VC Usage" (id, company_id, customer_id, customer_name, customer_email, customer_phone, session_id, view_count) VALUES
  (1, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, 'Ann', 'ANN@a.example', NULL, 'ann-1', 1),
  (2, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, NULL, NULL, '(555) 123-4567', 'ann-2', 2),
  (3, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, 'Bob', 'bob@a.example', NULL, 'bob-1', 1),
  (4, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, 'Bob', ' Bob@A.example ', '555 000 1111', 'bob-2', 1),
  (5, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, 'Cara', NULL, NULL, 'cara-1', 1),
  (6, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, NULL, NULL, NULL, 'nobody', 1),
  (7, 'aaaaaaaa-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001', 'Ann', 'ann@a.example', NULL, 'linked', 1),
  (8, 'bbbbbbbb-0000-0000-0000-000000000002', NULL, 'Ann', 'ann@a.example', NULL, 'b-ann', 1),
  (9, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, 'Dee', 'boom@a.example', NULL, 'dee-1', 1),
  (10, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, 'Eve', 'eve@a.example', NULL, 'eve-1', 1);
RESET session_replication_role;
SELECT setval(pg_get_serial_sequence('"VC Usage"', 'id'), 10);

-- refused before install() (the plpgsql sync would link by other keys)
CALL crm_native.relink_chats();
SELECT crm_native.install() IS NOT NULL AS installed LIMIT 1;
SELECT crm_native.rebuild_matching_keys() AS keys;
SELECT crm_native.rebuild_metrics() IS NOT NULL AS metrics_rebuilt;
-- bad input
CALL crm_native.relink_chats('public', 0);
CALL crm_native.relink_chats('public', -5);
CALL crm_native.relink_chats('public', NULL);
CALL crm_native.relink_chats('no_such_schema');
-- it commits per batch: not inside a transaction block
BEGIN;
CALL crm_native.relink_chats();
ROLLBACK;
SELECT count(*) AS linked_so_far FROM "VC Usage" WHERE customer_id IS NOT NULL;

-- An application trigger that fails on chat 9 with a serialization failure
-- stands for a transient error or a cancel in the middle of a run: the run
-- stops there, and the batches before it stay committed. (An error that is
-- not transient skips the chat instead: at the end of this file.)
CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.customer_email = 'boom@a.example' THEN
    RAISE EXCEPTION 'boom on chat %', NEW.id USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER boom BEFORE UPDATE ON "VC Usage" FOR EACH ROW EXECUTE FUNCTION boom();
CALL crm_native.relink_chats('public', 2);
SELECT id, customer_id IS NOT NULL AS linked FROM "VC Usage" ORDER BY id;
DROP TRIGGER boom ON "VC Usage";
-- run again: goes on (chat 6 has nothing to match by and stays unlinked)
CALL crm_native.relink_chats('public', 2);
SELECT v.id, v.company_id = 'bbbbbbbb-0000-0000-0000-000000000002' AS in_b, c.customer_name, c.customer_email, c.source
  FROM "VC Usage" v LEFT JOIN customers c ON c.id = v.customer_id ORDER BY v.id;
-- one customer per person, created as the sync creates them; B's Ann is B's own
SELECT company_id, customer_name, customer_email, customer_phone, source
  FROM customers ORDER BY company_id, created_at, customer_name;
SELECT c.customer_name, e.event_data FROM customer_events e JOIN customers c ON c.id = e.customer_id
 WHERE e.event_type = 'created' ORDER BY 1;
SELECT count(*) AS metrics_differences FROM crm_native.verify_metrics();
SELECT c.customer_name, m.total_conversations, m.total_sessions
  FROM customer_metrics m JOIN customers c ON c.id = m.customer_id ORDER BY 1, m.company_id;
-- nothing left to do: the run sees only chat 6
CALL crm_native.relink_chats();

-- With an index on the unlinked chats, relink_chats walks it (advice in
-- verify_operations) and the chats arriving meanwhile are linked by the
-- sync as usual.
SELECT operation, item, ok, detail FROM crm_native.verify_operations() WHERE operation = 'relink_chats';
-- (VACUUM first: the relinked chats' old versions, still visible to a
-- transaction that was running elsewhere on the server, would go into the
-- new index and change the plan below)
VACUUM "VC Usage";
CREATE INDEX vc_usage_unlinked_idx ON "VC Usage" (id) WHERE customer_id IS NULL;
SELECT operation, item, ok, detail FROM crm_native.verify_operations() WHERE operation = 'relink_chats';
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT v.id::bigint AS id FROM "VC Usage" v WHERE v.customer_id IS NULL AND v.id > 0 ORDER BY v.id LIMIT 100;
RESET enable_seqscan;

-- As crm_app (row-level security): only the current company's chats. The
-- company is set for the session, since every batch is a new transaction.
GRANT USAGE ON SCHEMA crm_native TO crm_app;
SET session_replication_role = replica;
INSERT INTO "VC Usage" (id, company_id, customer_email, session_id) VALUES
  (20, 'aaaaaaaa-0000-0000-0000-000000000001', 'fay@a.example', 'fay'),
  (21, 'bbbbbbbb-0000-0000-0000-000000000002', 'gus@b.example', 'gus');
RESET session_replication_role;
SET ROLE crm_app;
SELECT set_config('app.current_company_id', 'aaaaaaaa-0000-0000-0000-000000000001', false);
CALL crm_native.relink_chats();
RESET ROLE;
SELECT v.id, c.customer_name IS NOT NULL AS linked, c.customer_email
  FROM "VC Usage" v LEFT JOIN customers c ON c.id = v.customer_id WHERE v.id >= 20 ORDER BY v.id;
CALL crm_native.relink_chats();
SELECT count(*) AS metrics_differences FROM crm_native.verify_metrics();

-- A chat whose sync fails every time (its new customer breaks an
-- application's CHECK) no longer stops every run at its batch: that batch
-- is linked chat by chat, the failing chat is left unlinked with a warning
-- that names it, and the run goes on (before, each run failed on the same
-- batch and the chats after it were never linked).
SET session_replication_role = replica;
INSERT INTO "VC Usage" (id, company_id, customer_name, customer_email, session_id)
  SELECT 100 + i, 'aaaaaaaa-0000-0000-0000-000000000001',
         CASE WHEN i = 5 THEN 'A name far too long for the check' ELSE 'Short ' || i END,
         'short' || i || '@a.example', 'short' || i
    FROM generate_series(1, 12) i;
RESET session_replication_role;
ALTER TABLE customers ADD CONSTRAINT short_name CHECK (length(customer_name) < 20) NOT VALID;
SET client_min_messages = warning;
CALL crm_native.relink_chats(batch_size => 4);
RESET client_min_messages;
SELECT count(*) FILTER (WHERE customer_id IS NOT NULL) AS linked, count(*) FILTER (WHERE customer_id IS NULL) AS unlinked,
       string_agg(id::text, ',') FILTER (WHERE customer_id IS NULL) AS unlinked_ids
  FROM "VC Usage" WHERE id > 100;
ALTER TABLE customers DROP CONSTRAINT short_name;
SELECT count(*) AS metrics_differences FROM crm_native.verify_metrics();
-- An error no single chat causes (here permission denied) is not skipped:
-- the run stops, as for a transient error.
SET session_replication_role = replica;
INSERT INTO "VC Usage" (id, company_id, customer_name, customer_email, session_id)
  VALUES (200, 'aaaaaaaa-0000-0000-0000-000000000001', 'Priv', 'priv@a.example', 'priv');
RESET session_replication_role;
CREATE FUNCTION denied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'denied on chat %', NEW.id USING ERRCODE = 'insufficient_privilege'; END $$;
CREATE TRIGGER denied BEFORE UPDATE ON "VC Usage" FOR EACH ROW EXECUTE FUNCTION denied();
SET client_min_messages = warning;
CALL crm_native.relink_chats();
RESET client_min_messages;
DROP TRIGGER denied ON "VC Usage";
SELECT count(*) AS still_unlinked FROM "VC Usage" WHERE id = 200 AND customer_id IS NULL;
-- In a read-only transaction (or on a standby) the run stops at the first
-- batch with PostgreSQL's error; it went chat by chat, warned for each and
-- reported success (found by an independent tester).
SET default_transaction_read_only = on;
SET client_min_messages = warning;
CALL crm_native.relink_chats();
RESET client_min_messages;
RESET default_transaction_read_only;
SELECT count(*) AS still_unlinked FROM "VC Usage" WHERE id = 200 AND customer_id IS NULL;
-- A chat with nothing the sync would link it by (no email, phone or name
-- that gives a key) is not rewritten by each run: its row version stays
-- (every run rewrote every such chat, with its index entries and WAL;
-- found by an independent tester). A linkable chat of the same batch is
-- linked.
SET session_replication_role = replica;
INSERT INTO "VC Usage" (id, company_id, customer_name, customer_email, customer_phone, session_id)
  VALUES (300, 'aaaaaaaa-0000-0000-0000-000000000001', NULL, NULL, NULL, 'anon1'),
         (301, 'aaaaaaaa-0000-0000-0000-000000000001', '  ', '', ' ', 'anon2'),
         (302, 'aaaaaaaa-0000-0000-0000-000000000001', 'Ruth', 'ruth@a.example', NULL, 'ruth');
RESET session_replication_role;
CREATE TEMP TABLE versions_before AS SELECT id, xmin::text AS version FROM "VC Usage" WHERE id IN (300, 301, 302);
SET client_min_messages = warning;
CALL crm_native.relink_chats();
RESET client_min_messages;
SELECT v.id, v.customer_id IS NOT NULL AS linked, v.xmin::text = b.version AS row_untouched
  FROM "VC Usage" v JOIN versions_before b USING (id) ORDER BY v.id;

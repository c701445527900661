-- A chat that names its customer (preset customer_id on INSERT, or a
-- customer_id/company_id changed by UPDATE) must name a live customer of the
-- chat's own company: otherwise the statement fails with 23503 and nothing
-- of it is written. A deliberate difference from the plpgsql triggers, which
-- let a tenant's chat count in another tenant's customer.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'A'), ('bbbbbbbb-0000-0000-0000-000000000002', 'B');
INSERT INTO customers (id, company_id, customer_email) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'aaaaaaaa-0000-0000-0000-000000000001', 'ann@a.example'),
  ('b0000000-0000-0000-0000-00000000000b', 'bbbbbbbb-0000-0000-0000-000000000002', 'bob@b.example'),
  ('d0000000-0000-0000-0000-00000000000d', 'aaaaaaaa-0000-0000-0000-000000000001', 'del@a.example');
UPDATE customers SET deleted_at = now() WHERE id = 'd0000000-0000-0000-0000-00000000000d';
\set VERBOSITY default
-- accepted: a live customer of the chat's company
INSERT INTO "VC Usage" (company_id, customer_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-00000000000a', 'ok');
-- refused: another company's customer, a soft-deleted one, none at all
INSERT INTO "VC Usage" (company_id, customer_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-00000000000b', 'cross');
INSERT INTO "VC Usage" (company_id, customer_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'd0000000-0000-0000-0000-00000000000d', 'deleted');
-- a multi-row statement: nothing of it is written
INSERT INTO "VC Usage" (company_id, customer_id, customer_email, user_message) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', NULL, 'new@a.example', 'first'),
  ('aaaaaaaa-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-00000000000b', NULL, 'second');
SELECT count(*) AS customers_named_new FROM customers WHERE customer_email = 'new@a.example';
-- UPDATE that moves the link or the company
UPDATE "VC Usage" SET customer_id = 'b0000000-0000-0000-0000-00000000000b' WHERE user_message = 'ok';
UPDATE "VC Usage" SET company_id = 'bbbbbbbb-0000-0000-0000-000000000002' WHERE user_message = 'ok';
-- both together, to a customer of the new company: accepted
UPDATE "VC Usage" SET company_id = 'bbbbbbbb-0000-0000-0000-000000000002',
                      customer_id = 'b0000000-0000-0000-0000-00000000000b' WHERE user_message = 'ok';
-- unlinking is always allowed, and does not relink
UPDATE "VC Usage" SET customer_id = NULL WHERE user_message = 'ok';
-- a link an application's BEFORE UPDATE trigger changes, in an UPDATE that
-- names none of the chat's link or contact columns, is checked too (the
-- sync's UPDATE trigger was UPDATE OF those columns, and did not fire;
-- found by an independent tester)
CREATE FUNCTION pg_temp.relink_chat() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.user_message = 'relink' THEN NEW.customer_id := 'a0000000-0000-0000-0000-00000000000a'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER a_relink_chat BEFORE UPDATE ON "VC Usage" FOR EACH ROW EXECUTE FUNCTION pg_temp.relink_chat();
UPDATE "VC Usage" SET user_message = 'relink' WHERE user_message = 'ok';
DROP TRIGGER a_relink_chat ON "VC Usage";
SELECT user_message, company_id, customer_id FROM "VC Usage" ORDER BY id;
SELECT customer_id, company_id, total_conversations FROM customer_metrics ORDER BY 1;

-- As the application role under row-level security: another company's
-- customer is invisible and refused the same way; nothing of B changes.
SET ROLE crm_app;
SELECT set_config('app.current_company_id', 'aaaaaaaa-0000-0000-0000-000000000001', false);
INSERT INTO "VC Usage" (company_id, customer_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-00000000000b', 'rls-cross');
INSERT INTO "VC Usage" (company_id, customer_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-00000000000a', 'rls-ok');
UPDATE "VC Usage" SET customer_id = 'b0000000-0000-0000-0000-00000000000b' WHERE user_message = 'rls-ok';
-- the bulk lock limit is not the application's to change (superuser only)
SET crm_native.sync_key_lock_limit = 0;
RESET ROLE;
SELECT user_message, customer_id FROM "VC Usage" ORDER BY id;
SELECT customer_id, total_conversations FROM customer_metrics ORDER BY 1;
SELECT count(*) AS b_audit_rows FROM customer_audit_log WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002';
SELECT * FROM crm_native.verify_metrics();

-- An application whose UPDATE policy on customers is narrower than its
-- SELECT policy (here: the customer named 'Managed' is read-only to
-- crm_app). A locking read sees rows through the UPDATE policies too, so the
-- sync cannot lock that customer; it links the chats without the lock and
-- fills nothing, as the plpgsql trigger did (its SELECT ... FOR UPDATE found
-- nothing to fill, and it linked). Before: 40001 "kept changing
-- concurrently", or 23503 for a chat that names the customer.
DROP POLICY tenant_update ON customers;
CREATE POLICY tenant_update ON customers FOR UPDATE
    USING (company_id = current_company_id() AND deleted_at IS NULL AND customer_name IS DISTINCT FROM 'Managed')
    WITH CHECK (company_id = current_company_id());
INSERT INTO customers (id, company_id, customer_name, customer_email) VALUES
  ('a1000000-0000-0000-0000-0000000000a1', 'aaaaaaaa-0000-0000-0000-000000000001', 'Managed', 'vip@a.example');
SET ROLE crm_app;
SELECT set_config('app.current_company_id', 'aaaaaaaa-0000-0000-0000-000000000001', false);
INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'vip@a.example', 'v1', 'vip-email');
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'vip@a.example', '+1 212 555 0100', 'v2', 'vip-fills-phone');
INSERT INTO "VC Usage" (company_id, customer_name, session_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'Managed', 'v3', 'vip-name');
INSERT INTO "VC Usage" (company_id, customer_id, session_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'a1000000-0000-0000-0000-0000000000a1', 'v4', 'vip-named');
UPDATE "VC Usage" SET customer_phone = '+1 212 555 0101' WHERE user_message = 'vip-named';
RESET ROLE;
SELECT user_message, customer_id = 'a1000000-0000-0000-0000-0000000000a1' AS linked
  FROM "VC Usage" WHERE user_message LIKE 'vip-%' ORDER BY id;
SELECT count(*) AS customers, max(customer_phone) AS phone FROM customers WHERE customer_email = 'vip@a.example';
SELECT total_conversations, total_sessions FROM customer_metrics WHERE customer_id = 'a1000000-0000-0000-0000-0000000000a1';
SELECT * FROM crm_native.verify_metrics();
DROP POLICY tenant_update ON customers;
CREATE POLICY tenant_update ON customers FOR UPDATE
    USING (company_id = current_company_id() AND deleted_at IS NULL)
    WITH CHECK (company_id = current_company_id());
-- an UPDATE that links a chat to a soft-deleted customer and sets an email
-- that cannot be normalized is refused at once: the link error alone, no
-- "sync skipped" WARNING before it (the link's locking check runs after
-- the fill, an unlocked one first; found by an independent review)
INSERT INTO customers (id, company_id, customer_name, deleted_at)
  VALUES ('a1000000-0000-0000-0000-0000000000d1', 'aaaaaaaa-0000-0000-0000-000000000001', 'Gone', now());
INSERT INTO "VC Usage" (company_id, session_id, user_message)
  VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'g1', 'gone-link');
UPDATE "VC Usage" SET customer_id = 'a1000000-0000-0000-0000-0000000000d1',
       customer_email = repeat('a', 3000) || '@x.example' WHERE user_message = 'gone-link';
-- The lock tags are the schema's: on a copy of the CRM tables of its own
-- (temporary tables, where no row-level security applies) a role took the
-- real tables' key locks of any company it named, held them at will and
-- read their tags (found by an independent tester). The same company and
-- email, in this session, take two different key locks (one before).
CREATE TEMP TABLE customers (LIKE public.customers INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TEMP TABLE customer_matching_keys (LIKE public.customer_matching_keys INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TEMP TABLE customer_events (LIKE public.customer_events INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TEMP TABLE "VC Usage" (LIKE public."VC Usage" INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TRIGGER trg_copy_sync BEFORE INSERT ON pg_temp."VC Usage"
    FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync();
BEGIN;
INSERT INTO public."VC Usage" (company_id, customer_email, session_id)
  VALUES ('bbbbbbbb-0000-0000-0000-000000000002', 'copy@b.example', 'real-1');
INSERT INTO pg_temp."VC Usage" (company_id, customer_email, session_id)
  VALUES ('bbbbbbbb-0000-0000-0000-000000000002', 'copy@b.example', 'copy-1');
SELECT count(*) AS key_locks FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 17234 AND pid = pg_backend_pid();
ROLLBACK;
DROP TABLE pg_temp."VC Usage", pg_temp.customers, pg_temp.customer_matching_keys, pg_temp.customer_events;

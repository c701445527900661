-- crm_native.customer_sync(): docs/contract.md "Customer sync", steps 1-6,
-- and the decisions the reference plpgsql trigger takes where the contract is
-- silent (reference/02_plpgsql_triggers.sql).
BEGIN;
SELECT plan(37);
SET LOCAL client_min_messages = warning;

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() puts the native triggers in place');

SELECT is((SELECT count(*)::int FROM crm_native.native_trigger
            WHERE replaces IN ('trg_vc_usage_customer_sync_insert', 'trg_vc_usage_customer_sync_update')), 2,
          'both sync triggers are registered for install()');
SELECT is((SELECT count(*)::int FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = '"VC Usage"'::regclass AND p.proname = 'customer_sync'), 2,
          'the registered DDL creates two native triggers');

INSERT INTO companies (id, name) VALUES
    ('00000000-0000-0000-0000-00000000000a', 'A'), ('00000000-0000-0000-0000-00000000000b', 'B');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
CREATE FUNCTION pg_temp.chat(p_company text, p_name text, p_email text, p_phone text,
                             p_session text DEFAULT 'sess', p_customer uuid DEFAULT NULL)
    RETURNS uuid LANGUAGE sql AS $$
    INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, customer_phone, session_id)
    VALUES (('00000000-0000-0000-0000-00000000000' || p_company)::uuid, p_customer, p_name, p_email, p_phone, p_session)
    RETURNING customer_id $$;

-- 5. Not matched: a new customer, its keys, its 'created' event.
INSERT INTO ids SELECT 'ann', pg_temp.chat('a', 'Ann Lee', 'Ann@Example.com', NULL, 'sess-1');
SELECT isnt((SELECT id FROM ids WHERE name = 'ann'), NULL, 'a new chat creates and links a customer');
SELECT results_eq(
    $$SELECT customer_name, customer_email, customer_phone, source, created_by_user_id, company_id
        FROM customers WHERE id = (SELECT id FROM ids WHERE name = 'ann')$$,
    $$VALUES ('Ann Lee', 'Ann@Example.com', NULL::text, 'chat', NULL::uuid, '00000000-0000-0000-0000-00000000000a'::uuid)$$,
    'the new customer has the chat''s raw name/email/phone, source chat, no creator');
SELECT results_eq(
    $$SELECT event_type, event_data FROM customer_events WHERE customer_id = (SELECT id FROM ids WHERE name = 'ann')$$,
    $$VALUES ('created', '{"source": "chat", "session_id": "sess-1"}'::jsonb)$$,
    'one created event with source and session_id');
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM customer_matching_keys
       WHERE customer_id = (SELECT id FROM ids WHERE name = 'ann') ORDER BY key_type$$,
    $$VALUES ('email', 'ann@example.com'), ('name', 'ann lee')$$,
    'its matching keys come from the customers trigger');

-- 3. Matched by email (normalized), within the company only.
SELECT is(pg_temp.chat('a', 'Someone', '  ANN@example.COM ', NULL), (SELECT id FROM ids WHERE name = 'ann'),
          'same email, written differently: linked to the same customer');
SELECT isnt(pg_temp.chat('b', 'Ann Lee', 'ann@example.com', NULL), (SELECT id FROM ids WHERE name = 'ann'),
            'same email in another company: never linked across tenants');
SELECT is((SELECT count(*)::int FROM customers WHERE lower(customer_email) = 'ann@example.com'), 2,
          'one customer per company');

-- 4. Matched, nothing to fill: the customer is not touched (no UPDATE, no
-- audit row, no event; docs/contract.md, sync step 4).
UPDATE customers SET updated_at = '2000-01-01' WHERE id = (SELECT id FROM ids WHERE name = 'ann');
CREATE TEMP TABLE audit_before AS SELECT count(*)::int AS n FROM customer_audit_log;
SELECT pg_temp.chat('a', 'Ann', 'ann@example.com', NULL);
SELECT results_eq(
    $$SELECT c.updated_at = '2000-01-01', (SELECT count(*)::int FROM customer_events e WHERE e.customer_id = c.id),
             (SELECT count(*)::int FROM customer_audit_log) - (SELECT n FROM audit_before)
        FROM customers c WHERE c.id = (SELECT id FROM ids WHERE name = 'ann')$$,
    $$VALUES (true, 1, 0)$$,
    'a returning chat with nothing new does not touch the customer: updated_at kept, no event, no audit row of its own');
UPDATE customers SET updated_at = '2000-01-01' WHERE id = (SELECT id FROM ids WHERE name = 'ann');

-- 4. Matched, phone missing: filled (raw), updated_at set, event written.
SELECT is(pg_temp.chat('a', 'Ann', 'ann@example.com', '+1 555 123 4567'), (SELECT id FROM ids WHERE name = 'ann'),
          'a chat with a new phone links by email');
SELECT results_eq(
    $$SELECT customer_email, customer_phone, updated_at > '2000-01-01' FROM customers WHERE id = (SELECT id FROM ids WHERE name = 'ann')$$,
    $$VALUES ('Ann@Example.com', '+1 555 123 4567', true)$$,
    'the missing phone is filled as given, the email kept, updated_at set');
SELECT results_eq(
    $$SELECT event_data FROM customer_events
       WHERE customer_id = (SELECT id FROM ids WHERE name = 'ann') AND event_type = 'contact_info_added'$$,
    $$VALUES ('{"fields": ["customer_phone"]}'::jsonb)$$,
    'contact_info_added names the filled column');
SELECT pg_temp.chat('a', 'Ann', 'ann@example.com', '+1 555 999 0000');
SELECT is((SELECT customer_phone FROM customers WHERE id = (SELECT id FROM ids WHERE name = 'ann')),
          '+1 555 123 4567', 'an existing phone is never overwritten');

-- 3. Matched by phone when the email does not match.
SELECT is(pg_temp.chat('a', 'A. Lee', 'other@example.com', '+15551234567'), (SELECT id FROM ids WHERE name = 'ann'),
          'unknown email, known phone: matched by phone');
SELECT is((SELECT customer_email FROM customers WHERE id = (SELECT id FROM ids WHERE name = 'ann')),
          'Ann@Example.com', 'matched by phone: the customer''s email is not overwritten');

-- 3. Name only without email and phone.
INSERT INTO ids SELECT 'bob', pg_temp.chat('a', 'Bob  Stone', NULL, NULL);
SELECT is(pg_temp.chat('a', ' bob stone ', NULL, '   '), (SELECT id FROM ids WHERE name = 'bob'),
          'no email or phone: matched by name');
SELECT isnt(pg_temp.chat('a', 'Bob Stone', 'bob@example.com', NULL), (SELECT id FROM ids WHERE name = 'bob'),
            'with an email, the name is not a match key');

-- 2. Nothing to match on.
SELECT is(pg_temp.chat('a', NULL, NULL, NULL), NULL::uuid, 'no name, email or phone: unlinked');
SELECT is(pg_temp.chat('a', '  ', ' ', '-- --'), NULL::uuid, 'blank values: unlinked');
SELECT is((SELECT count(*)::int FROM customers WHERE customer_name IS NULL OR btrim(customer_name) = ''), 0,
          'and no customer was created for them');

-- 1. An INSERT that is already linked is left as it is.
SELECT is(pg_temp.chat('a', 'Zed', 'zed@example.com', NULL, 'sess', (SELECT id FROM ids WHERE name = 'bob')),
          (SELECT id FROM ids WHERE name = 'bob'), 'a linked INSERT keeps its customer');
SELECT is((SELECT count(*)::int FROM customers WHERE customer_email = 'zed@example.com'), 0,
          'and creates no customer');
SELECT is((SELECT customer_email FROM customers WHERE id = (SELECT id FROM ids WHERE name = 'bob')), NULL,
          'and fills nothing on an INSERT');

-- 3. Deleted customers are not matched; the oldest live holder wins.
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at, deleted_at) VALUES
    ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-00000000000a', 'Old', 'dup@example.com', '2001-01-01', now()),
    ('00000000-0000-0000-0000-0000000000d2', '00000000-0000-0000-0000-00000000000a', 'Mid', 'dup@example.com', '2002-01-01', NULL),
    ('00000000-0000-0000-0000-0000000000d3', '00000000-0000-0000-0000-00000000000a', 'New', 'dup@example.com', '2003-01-01', NULL);
SELECT is(pg_temp.chat('a', 'x', 'dup@example.com', NULL), '00000000-0000-0000-0000-0000000000d2'::uuid,
          'the oldest live customer holding the key wins; deleted ones are skipped');

-- 3. Merge chains: followed to the survivor; dead chains skipped.
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at, deleted_at) VALUES
    ('00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-00000000000a', 'Survivor', NULL, NULL, '2003-01-01', NULL),
    ('00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-00000000000a', 'Middle', NULL, NULL, '2002-01-01', now()),
    ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-00000000000a', 'Source', 'merged@example.com', NULL, '2001-01-01', NULL);
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000e3' WHERE id = '00000000-0000-0000-0000-0000000000e2';
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000e2' WHERE id = '00000000-0000-0000-0000-0000000000e1';
SELECT is(pg_temp.chat('a', 'x', 'merged@example.com', '+15550002222'), '00000000-0000-0000-0000-0000000000e3'::uuid,
          'a merged match follows merged_into_customer_id to the survivor (through a deleted middle)');
SELECT results_eq(
    $$SELECT customer_email, customer_phone FROM customers WHERE id = '00000000-0000-0000-0000-0000000000e3'$$,
    $$VALUES ('merged@example.com', '+15550002222')$$,
    'the survivor gets the missing contact info');
SELECT results_eq(
    $$SELECT event_data FROM customer_events WHERE customer_id = '00000000-0000-0000-0000-0000000000e3'$$,
    $$VALUES ('{"fields": ["customer_email", "customer_phone"]}'::jsonb)$$,
    'both filled columns are named, email first');

-- a chain that ends at a deleted survivor: the next-oldest holder is used
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at, deleted_at) VALUES
    ('00000000-0000-0000-0000-0000000000f9', '00000000-0000-0000-0000-00000000000a', 'Gone', NULL, '2000-01-01', now()),
    ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a', 'Dead end', 'chain@example.com', '2001-01-01', NULL),
    ('00000000-0000-0000-0000-0000000000f2', '00000000-0000-0000-0000-00000000000a', 'Next', 'chain@example.com', '2002-01-01', NULL);
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000f9' WHERE id = '00000000-0000-0000-0000-0000000000f1';
SELECT is(pg_temp.chat('a', 'x', 'chain@example.com', NULL), '00000000-0000-0000-0000-0000000000f2'::uuid,
          'a holder whose chain ends at a deleted customer is skipped for the next-oldest');

-- a cycle: no survivor, the key gives no match
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000a', 'C1', 'cycle@example.com', '2001-01-01'),
    ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-00000000000a', 'C2', NULL, '2002-01-01');
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000c2' WHERE id = '00000000-0000-0000-0000-0000000000c1';
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000c1' WHERE id = '00000000-0000-0000-0000-0000000000c2';
SELECT ok(pg_temp.chat('a', 'x', 'cycle@example.com', NULL) NOT IN ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000c2'),
          'a merge cycle has no survivor: a new customer is created');

-- a chain that leaves the company: no survivor
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000b9', '00000000-0000-0000-0000-00000000000b', 'Elsewhere', NULL, '2000-01-01'),
    ('00000000-0000-0000-0000-0000000000a9', '00000000-0000-0000-0000-00000000000a', 'Leaver', 'leaver@example.com', '2001-01-01');
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000b9' WHERE id = '00000000-0000-0000-0000-0000000000a9';
SELECT ok(pg_temp.chat('a', 'x', 'leaver@example.com', NULL) NOT IN ('00000000-0000-0000-0000-0000000000a9', '00000000-0000-0000-0000-0000000000b9'),
          'a merge chain never leads into another company');

-- UPDATE trigger: an unlinked row is synced; a linked row only fills.
INSERT INTO "VC Usage" (id, company_id, session_id) VALUES (1000, '00000000-0000-0000-0000-00000000000a', 'late');
UPDATE "VC Usage" SET customer_email = 'ann@example.com' WHERE id = 1000;
SELECT is((SELECT customer_id FROM "VC Usage" WHERE id = 1000), (SELECT id FROM ids WHERE name = 'ann'),
          'UPDATE of an unlinked row links it');
UPDATE "VC Usage" SET customer_email = 'bob@stone.example', customer_phone = '+15550003333'
 WHERE customer_id = (SELECT id FROM ids WHERE name = 'bob') AND customer_name = 'Bob  Stone';
SELECT is((SELECT count(DISTINCT customer_id)::int FROM "VC Usage" WHERE customer_name = 'Bob  Stone'), 1,
          'UPDATE of a linked row never relinks');
SELECT results_eq(
    $$SELECT customer_email, customer_phone FROM customers WHERE id = (SELECT id FROM ids WHERE name = 'bob')$$,
    $$VALUES ('bob@stone.example', '+15550003333')$$,
    'UPDATE of a linked row fills its customer''s missing contact info');
UPDATE "VC Usage" SET customer_phone = NULL WHERE id = 1000;
SELECT is((SELECT customer_id FROM "VC Usage" WHERE id = 1000), (SELECT id FROM ids WHERE name = 'ann'),
          'an UPDATE that only blanks contact info keeps the link');

-- Cached plans and attribute numbers survive a change of "VC Usage".
ALTER TABLE "VC Usage" DROP COLUMN user_message;
ALTER TABLE "VC Usage" ADD COLUMN channel text;
SELECT is(pg_temp.chat('a', 'x', 'ann@example.com', NULL), (SELECT id FROM ids WHERE name = 'ann'),
          'after ALTER TABLE the trigger still reads the right columns');

SELECT * FROM finish();
ROLLBACK;

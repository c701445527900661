-- The plpgsql reference (reference/02_plpgsql_triggers.sql): customer sync
-- from "VC Usage" and matching keys, per docs/contract.md, "The triggers".
-- Runs as the owner (no RLS); reference_rls.sql covers the application role.
BEGIN;
SELECT plan(56);

INSERT INTO companies (id, name) VALUES
    ('11111111-1111-1111-1111-111111111111', 'Company A'),
    ('22222222-2222-2222-2222-222222222222', 'Company B');
INSERT INTO users (id, email, company_id) VALUES
    ('33333333-3333-3333-3333-333333333333', 'agent@a.example', '11111111-1111-1111-1111-111111111111');

CREATE TEMP VIEW chat AS   -- chat row -> its customer
    SELECT v.session_id, v.customer_id, c.customer_name, c.customer_email, c.customer_phone
      FROM "VC Usage" v LEFT JOIN customers c ON c.id = v.customer_id;

-- ---------------------------------------------------------------------------
-- Seed scenario 3: 100 bulk chats of 100 new customers.
-- ---------------------------------------------------------------------------
INSERT INTO "VC Usage" (company_id, user_id, customer_name, customer_email, customer_phone,
                        session_id, interaction_number, user_message, ai_response)
SELECT '11111111-1111-1111-1111-111111111111', '33333333-3333-3333-3333-333333333333',
       'Bulk Customer ' || i, 'bulk' || i || '@example.com', '+1555' || lpad(i::text, 7, '0'),
       'bulk_session_' || i, 1, 'Bulk test message', 'Bulk test response'
  FROM generate_series(1, 100) i;

SELECT is((SELECT count(DISTINCT customer_id) FROM "VC Usage" WHERE session_id LIKE 'bulk_session_%'),
          100::bigint, 'scenario 3: 100 chats -> 100 distinct customers');
SELECT is((SELECT count(*) FROM "VC Usage" WHERE customer_id IS NULL), 0::bigint, 'scenario 3: every chat linked');
SELECT is((SELECT count(*) FROM customers), 100::bigint, 'scenario 3: exactly 100 customers');
SELECT is((SELECT count(*) FROM customer_matching_keys mk JOIN customers c ON c.id = mk.customer_id
            WHERE c.customer_name LIKE 'Bulk Customer %'), 300::bigint, 'scenario 3: 300 matching keys');
SELECT is((SELECT count(*) FROM customer_metrics m JOIN customers c ON c.id = m.customer_id
            WHERE c.customer_name LIKE 'Bulk Customer %'), 100::bigint, 'scenario 3: 100 metrics rows');
SELECT is((SELECT count(*) FROM customers
            WHERE source = 'chat' AND created_by_user_id IS NULL
              AND company_id = '11111111-1111-1111-1111-111111111111'),
          100::bigint, 'new customers: source chat, no creating user, the chat''s company');
SELECT results_eq(
    $$SELECT customer_name, customer_email, customer_phone FROM chat WHERE session_id = 'bulk_session_7'$$,
    $$VALUES ('Bulk Customer 7'::text, 'bulk7@example.com'::text, '+15550000007'::text)$$,
    'new customer: name/email/phone as the chat gave them');
SELECT results_eq(
    $$SELECT key_type, key_value, normalized_value, company_id FROM customer_matching_keys
       WHERE customer_id = (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_7')
       ORDER BY key_type$$,
    $$VALUES ('email'::text, 'bulk7@example.com'::text, 'bulk7@example.com'::text, '11111111-1111-1111-1111-111111111111'::uuid),
             ('name', 'Bulk Customer 7', 'bulk customer 7', '11111111-1111-1111-1111-111111111111'),
             ('phone', '+15550000007', '15550000007', '11111111-1111-1111-1111-111111111111')$$,
    'matching keys: raw value, plpgsql-normalized value, customer''s company');
SELECT is((SELECT count(*) FROM customer_events WHERE event_type = 'created'), 100::bigint,
          'one created event per new customer');
SELECT is((SELECT event_data FROM customer_events
            WHERE customer_id = (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_7')),
          '{"source": "chat", "session_id": "bulk_session_7"}'::jsonb, 'created event data');
SELECT is((SELECT count(*) FROM customer_metrics
            WHERE total_conversations = 1 AND total_sessions = 1 AND total_views = 0
              AND first_interaction_at = last_interaction_at
              AND company_id = '11111111-1111-1111-1111-111111111111'),
          100::bigint, 'scenario 3: metrics values (1 conversation, 1 session, 0 views)');

-- ---------------------------------------------------------------------------
-- Returning customers are linked, not duplicated.
-- ---------------------------------------------------------------------------
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Somebody Else', '  BULK7@Example.COM ', 'ret_email');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'ret_email'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_7'), 'returning customer matched by email');
INSERT INTO "VC Usage" (company_id, customer_name, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Other Name', '+1 (555) 000-0008', 'ret_phone');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'ret_phone'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_8'), 'returning customer matched by phone');
INSERT INTO "VC Usage" (company_id, customer_name, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', E'  bulk \t CUSTOMER   9 ', 'ret_name');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'ret_name'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_9'),
          'chat without email/phone matched by name');
SELECT is((SELECT count(*) FROM customers), 100::bigint, 'returning customers: no new customer');
SELECT is((SELECT customer_name FROM chat WHERE session_id = 'ret_email'), 'Bulk Customer 7',
          'matched customer keeps its name');

-- name is not used when the chat has an email or a phone
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Bulk Customer 10', 'other10@example.com', 'name_ignored');
SELECT isnt((SELECT customer_id FROM chat WHERE session_id = 'name_ignored'),
            (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_10'),
            'name is not a match key when the chat has an email');
-- unknown email falls through to the phone
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'B11', 'new11@example.com', '15550000011', 'email_then_phone');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'email_then_phone'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_11'), 'unknown email: matched by phone');
SELECT is((SELECT customer_email FROM chat WHERE session_id = 'bulk_session_11'), 'bulk11@example.com',
          'never overwrite: existing email kept');
SELECT is((SELECT count(*) FROM customer_events WHERE event_type = 'contact_info_added'), 0::bigint,
          'nothing filled: no contact_info_added event');
SELECT is((SELECT count(*) FROM customer_audit_log WHERE operation = 'UPDATE'), 0::bigint,
          'nothing filled: the customer is not updated');

-- nothing to match on: stays unlinked, no customer
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', '   ', '', 'n/a', 'empty');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'empty'), NULL, 'all keys empty: chat stays unlinked');
-- an INSERT with customer_id set is left as it is
INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_1'),
        'Bulk Customer 2', 'bulk2@example.com', 'preset');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'preset'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_1'), 'preset customer_id kept');
SELECT is((SELECT count(*) FROM customers), 101::bigint, 'only name_ignored created a customer');

-- ---------------------------------------------------------------------------
-- Oldest wins (created_at, then id).
-- ---------------------------------------------------------------------------
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000b2', '11111111-1111-1111-1111-111111111111', 'Dup Newer', 'dup@example.com', '2021-01-01'),
    ('00000000-0000-0000-0000-0000000000b1', '11111111-1111-1111-1111-111111111111', 'Dup Older', 'dup@example.com', '2020-01-01'),
    ('00000000-0000-0000-0000-0000000000a9', '11111111-1111-1111-1111-111111111111', 'Dup Newest', 'dup@example.com', '2022-01-01');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'dup@example.com', 'oldest');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'oldest'), '00000000-0000-0000-0000-0000000000b1'::uuid,
          'several customers share the email: the oldest wins');
INSERT INTO customers (id, company_id, customer_name, customer_phone, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000c2', '11111111-1111-1111-1111-111111111111', 'Tie 2', '+1 555 777 0000', '2020-01-01'),
    ('00000000-0000-0000-0000-0000000000c1', '11111111-1111-1111-1111-111111111111', 'Tie 1', '1-555-777-0000', '2020-01-01');
INSERT INTO "VC Usage" (company_id, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', '+15557770000', 'tie');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'tie'), '00000000-0000-0000-0000-0000000000c1'::uuid,
          'equal created_at: the smaller id wins');

-- ---------------------------------------------------------------------------
-- Fill missing contact info, never overwrite.
-- ---------------------------------------------------------------------------
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at, updated_at) VALUES
    ('00000000-0000-0000-0000-0000000000d1', '11111111-1111-1111-1111-111111111111', 'Fill Me', 'fill@example.com', '  ',
     '2020-01-01', '2020-01-01');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Fill Me', 'FILL@example.com', '+1 555 222 3333', 'fill');
SELECT results_eq(
    $$SELECT customer_email, customer_phone, updated_at = now() FROM customers
       WHERE id = '00000000-0000-0000-0000-0000000000d1'$$,
    $$VALUES ('fill@example.com'::text, '+1 555 222 3333'::text, true)$$,
    'missing (blank) phone filled with the chat''s value, email kept, updated_at = now()');
SELECT results_eq(
    $$SELECT event_type, event_data, company_id FROM customer_events
       WHERE customer_id = '00000000-0000-0000-0000-0000000000d1'$$,
    $$VALUES ('contact_info_added'::text, '{"fields": ["customer_phone"]}'::jsonb,
              '11111111-1111-1111-1111-111111111111'::uuid)$$,
    'contact_info_added event names the filled column');
SELECT is((SELECT normalized_value FROM customer_matching_keys
            WHERE customer_id = '00000000-0000-0000-0000-0000000000d1' AND key_type = 'phone'),
          '15552223333', 'filled phone gets its matching key');
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'fill@example.com', '+1 555 999 9999', 'no_overwrite');
SELECT is((SELECT customer_phone FROM customers WHERE id = '00000000-0000-0000-0000-0000000000d1'),
          '+1 555 222 3333', 'never overwrite an existing phone');
SELECT is((SELECT count(*) FROM customer_events WHERE customer_id = '00000000-0000-0000-0000-0000000000d1'),
          1::bigint, 'no event when nothing was filled');
-- a match with nothing to fill leaves the customer untouched (contract, sync step 4)
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at, updated_at) VALUES
    ('00000000-0000-0000-0000-0000000000d3', '11111111-1111-1111-1111-111111111111', 'Complete', 'complete@example.com',
     '+1 555 444 0000', '2020-01-01', '2020-01-01');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'complete@example.com', 'touch_only');
SELECT is((SELECT updated_at FROM customers WHERE id = '00000000-0000-0000-0000-0000000000d3'),
          '2020-01-01'::timestamptz, 'a returning chat with nothing new does not touch the customer (updated_at kept)');
SELECT is((SELECT count(*) FROM customer_audit_log WHERE record_id = '00000000-0000-0000-0000-0000000000d3' AND operation = 'UPDATE'),
          0::bigint, 'a returning chat with nothing new writes no audit row');
SELECT is((SELECT count(*) FROM customer_events WHERE customer_id = '00000000-0000-0000-0000-0000000000d3'),
          0::bigint, 'no contact_info_added event when nothing was filled');
-- both filled, in column order
INSERT INTO customers (id, company_id, customer_name, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000d2', '11111111-1111-1111-1111-111111111111', 'Only Name', '2020-01-01');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Only Name', 'only@example.com', '+15551110000', 'fill_both');
SELECT isnt((SELECT customer_id FROM chat WHERE session_id = 'fill_both'), '00000000-0000-0000-0000-0000000000d2'::uuid,
            'a chat with email and phone does not match by name');
UPDATE "VC Usage" SET customer_id = '00000000-0000-0000-0000-0000000000d2', customer_name = 'Only Name'
 WHERE session_id = 'fill_both';
SELECT results_eq(
    $$SELECT customer_email, customer_phone FROM customers WHERE id = '00000000-0000-0000-0000-0000000000d2'$$,
    $$VALUES ('only@example.com'::text, '+15551110000'::text)$$,
    'UPDATE linking a chat fills its customer''s missing email and phone');
SELECT is((SELECT event_data FROM customer_events
            WHERE customer_id = '00000000-0000-0000-0000-0000000000d2' AND event_type = 'contact_info_added'),
          '{"fields": ["customer_email", "customer_phone"]}'::jsonb, 'both fields listed');

-- ---------------------------------------------------------------------------
-- Soft-deleted customers are not matched.
-- ---------------------------------------------------------------------------
INSERT INTO customers (id, company_id, customer_name, customer_email, deleted_at) VALUES
    ('00000000-0000-0000-0000-0000000000e1', '11111111-1111-1111-1111-111111111111', 'Gone', 'gone@example.com', now());
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Gone', 'gone@example.com', 'deleted');
SELECT isnt((SELECT customer_id FROM chat WHERE session_id = 'deleted'), '00000000-0000-0000-0000-0000000000e1'::uuid,
            'soft-deleted customer is not matched');
SELECT is((SELECT count(*) FROM customers WHERE customer_email = 'gone@example.com' AND deleted_at IS NULL),
          1::bigint, 'a new live customer was created instead');
SELECT is((SELECT customer_email FROM customers WHERE id = '00000000-0000-0000-0000-0000000000e1'), 'gone@example.com',
          'the soft-deleted customer is untouched');

-- ---------------------------------------------------------------------------
-- Merge chains.
-- ---------------------------------------------------------------------------
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000f3', '11111111-1111-1111-1111-111111111111', 'Survivor', NULL, NULL, '2020-01-03'),
    ('00000000-0000-0000-0000-0000000000f2', '11111111-1111-1111-1111-111111111111', 'Middle', 'mid@example.com', NULL, '2020-01-02'),
    ('00000000-0000-0000-0000-0000000000f1', '11111111-1111-1111-1111-111111111111', 'Merged', 'merged@example.com', NULL, '2020-01-01');
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000f3', deleted_at = now()
 WHERE id = '00000000-0000-0000-0000-0000000000f2';   -- merged-away rows are usually soft-deleted
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-0000000000f2'
 WHERE id = '00000000-0000-0000-0000-0000000000f1';
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'merged@example.com', '+15554440000', 'chain');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'chain'), '00000000-0000-0000-0000-0000000000f3'::uuid,
          'merge chain followed to the survivor (through a soft-deleted middle)');
SELECT results_eq(
    $$SELECT customer_email, customer_phone FROM customers WHERE id = '00000000-0000-0000-0000-0000000000f3'$$,
    $$VALUES ('merged@example.com'::text, '+15554440000'::text)$$,
    'the survivor gets the missing contact info');
SELECT is((SELECT customer_email FROM customers WHERE id = '00000000-0000-0000-0000-0000000000f1'),
          'merged@example.com', 'the merged customer is not modified');
-- a soft-deleted key holder is not followed even if merged
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'mid@example.com', 'deleted_holder');
SELECT ok((SELECT customer_id FROM chat WHERE session_id = 'deleted_holder')
          NOT IN ('00000000-0000-0000-0000-0000000000f2', '00000000-0000-0000-0000-0000000000f3'),
          'a soft-deleted key holder is not matched, even when merged');
-- chain ends at a soft-deleted customer: no match for that key, next key is tried
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at, deleted_at) VALUES
    ('00000000-0000-0000-0000-000000000102', '11111111-1111-1111-1111-111111111111', 'Dead End', NULL, NULL, '2020-01-02', now());
INSERT INTO customers (id, company_id, customer_name, customer_email, merged_into_customer_id, created_at) VALUES
    ('00000000-0000-0000-0000-000000000101', '11111111-1111-1111-1111-111111111111', 'To Dead', 'todead@example.com',
     '00000000-0000-0000-0000-000000000102', '2020-01-01');
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'todead@example.com', 'dead_end');
SELECT ok((SELECT customer_id FROM chat WHERE session_id = 'dead_end')
          NOT IN ('00000000-0000-0000-0000-000000000101', '00000000-0000-0000-0000-000000000102'),
          'chain ending at a soft-deleted customer: not matched, a new customer is created');
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'todead@example.com', '+15550000012', 'dead_end_phone');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'dead_end_phone'),
          (SELECT customer_id FROM chat WHERE session_id = 'dead_end'),
          'a holder whose chain is dead is skipped: the next-oldest holder of the email wins');
SELECT isnt((SELECT customer_id FROM chat WHERE session_id = 'dead_end_phone'),
            (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_12'), '... not the phone''s holder');
-- merge cycle
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at) VALUES
    ('00000000-0000-0000-0000-000000000201', '11111111-1111-1111-1111-111111111111', 'Cycle 1', 'cycle@example.com', '2020-01-01'),
    ('00000000-0000-0000-0000-000000000202', '11111111-1111-1111-1111-111111111111', 'Cycle 2', NULL, '2020-01-02');
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-000000000202' WHERE id = '00000000-0000-0000-0000-000000000201';
UPDATE customers SET merged_into_customer_id = '00000000-0000-0000-0000-000000000201' WHERE id = '00000000-0000-0000-0000-000000000202';
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'cycle@example.com', '+15550000013', 'cycle');
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'cycle'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_13'),
          'merge cycle: email gives no match, the phone matches');

-- ---------------------------------------------------------------------------
-- Tenant isolation of matching.
-- ---------------------------------------------------------------------------
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('22222222-2222-2222-2222-222222222222', 'Bulk Customer 20', 'bulk20@example.com', '+15550000020', 'tenant_b');
SELECT isnt((SELECT customer_id FROM chat WHERE session_id = 'tenant_b'),
            (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_20'),
            'same email in another company: not matched');
SELECT is((SELECT company_id FROM customers WHERE id = (SELECT customer_id FROM chat WHERE session_id = 'tenant_b')),
          '22222222-2222-2222-2222-222222222222'::uuid, 'company B gets its own customer');
SELECT is((SELECT count(*) FROM customers WHERE customer_email = 'bulk20@example.com'), 2::bigint,
          'two customers, one per company');
SELECT is((SELECT count(*) FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
            WHERE k.company_id <> c.company_id), 0::bigint, 'keys carry their customer''s company');

-- ---------------------------------------------------------------------------
-- UPDATE trigger.
-- ---------------------------------------------------------------------------
UPDATE "VC Usage" SET customer_email = 'bulk30@example.com' WHERE session_id = 'empty';
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'empty'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_30'), 'UPDATE of an unlinked chat syncs it');
UPDATE "VC Usage" SET customer_email = 'bulk31@example.com' WHERE session_id = 'ret_phone';
SELECT is((SELECT customer_id FROM chat WHERE session_id = 'ret_phone'),
          (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_8'), 'UPDATE of a linked chat never relinks');
UPDATE customers SET customer_email = NULL WHERE id = (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_40');
UPDATE "VC Usage" SET customer_email = 'new40@example.com' WHERE session_id = 'bulk_session_40';
SELECT is((SELECT customer_email FROM chat WHERE session_id = 'bulk_session_40'), 'new40@example.com',
          'UPDATE of a linked chat fills its customer''s missing email');

-- ---------------------------------------------------------------------------
-- Matching keys follow the customer.
-- ---------------------------------------------------------------------------
UPDATE customers SET customer_name = 'Renamed  Person', customer_phone = NULL
 WHERE id = (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_50');
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM customer_matching_keys
       WHERE customer_id = (SELECT customer_id FROM chat WHERE session_id = 'bulk_session_50') ORDER BY key_type$$,
    $$VALUES ('email'::text, 'bulk50@example.com'::text), ('name', 'renamed person')$$,
    'keys equal the current name/email/phone after an update');

SELECT * FROM finish();
ROLLBACK;

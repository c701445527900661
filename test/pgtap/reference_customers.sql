-- The plpgsql reference: audit log and lifecycle tracking on customers
-- (docs/contract.md, "The triggers").
BEGIN;
SELECT plan(30);

INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Company A');
INSERT INTO users (id, email, company_id) VALUES
    ('33333333-3333-3333-3333-333333333333', 'agent@a.example', '11111111-1111-1111-1111-111111111111');

-- ---------------------------------------------------------------------------
-- Audit: INSERT
-- ---------------------------------------------------------------------------
INSERT INTO customers (id, company_id, customer_name, customer_email, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'Ann Lee', 'ann@example.com',
        '2020-01-01', '2020-01-01');
SELECT results_eq(
    $$SELECT table_name, record_id, company_id, operation, old_data IS NULL, changed_fields IS NULL,
             changed_by_user_id IS NULL
        FROM customer_audit_log$$,
    $$VALUES ('customers'::text, '00000000-0000-0000-0000-000000000001'::uuid,
              '11111111-1111-1111-1111-111111111111'::uuid, 'INSERT'::text, true, true, true)$$,
    'INSERT: one audit row, no old data, no changed fields, no user when the GUC is unset');
SELECT is((SELECT new_data FROM customer_audit_log WHERE operation = 'INSERT'),
          (SELECT to_jsonb(c) FROM customers c WHERE id = '00000000-0000-0000-0000-000000000001'),
          'INSERT: new_data is to_jsonb of the row');

-- ---------------------------------------------------------------------------
-- Audit: UPDATE
-- ---------------------------------------------------------------------------
SET LOCAL app.current_user_id = '33333333-3333-3333-3333-333333333333';
CREATE TEMP TABLE before_update AS SELECT * FROM customers WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET tags = '{vip}', status = 'inactive', customer_address = '1 Main St', customer_notes = 'note'
 WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT count(*) FROM customer_audit_log WHERE operation = 'UPDATE'), 1::bigint, 'UPDATE: one audit row');
SELECT is((SELECT changed_fields FROM customer_audit_log WHERE operation = 'UPDATE'),
          ARRAY['customer_address', 'customer_notes', 'status', 'tags'],
          'UPDATE: changed_fields lists exactly the changed columns, sorted');
SELECT is((SELECT changed_by_user_id FROM customer_audit_log WHERE operation = 'UPDATE'),
          '33333333-3333-3333-3333-333333333333'::uuid, 'UPDATE: changed_by_user_id from app.current_user_id');
SELECT is((SELECT old_data FROM customer_audit_log WHERE operation = 'UPDATE'),
          (SELECT to_jsonb(b) FROM before_update b), 'UPDATE: old_data is the row before');
SELECT is((SELECT new_data FROM customer_audit_log WHERE operation = 'UPDATE'),
          (SELECT to_jsonb(c) FROM customers c WHERE id = '00000000-0000-0000-0000-000000000001'),
          'UPDATE: new_data is the row after');
SELECT is((SELECT record_id FROM customer_audit_log WHERE operation = 'UPDATE'),
          '00000000-0000-0000-0000-000000000001'::uuid, 'UPDATE: record_id');

-- no-op updates write nothing
UPDATE customers SET status = status, tags = '{vip}' WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET customer_name = customer_name;
SELECT is((SELECT count(*) FROM customer_audit_log WHERE operation = 'UPDATE'), 1::bigint,
          'an UPDATE that changes no column writes no audit row');
-- NULL -> value and value -> NULL are changes; jsonb compares by value
UPDATE customers SET customer_email = NULL, customer_phone = '+15550001111', metadata = '{"b": 1, "a": 2}'
 WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT changed_fields FROM customer_audit_log WHERE operation = 'UPDATE' ORDER BY id DESC LIMIT 1),
          ARRAY['customer_email', 'customer_phone', 'metadata'], 'NULL <-> value changes are listed');
UPDATE customers SET metadata = '{"a": 2, "b": 1}' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT count(*) FROM customer_audit_log WHERE operation = 'UPDATE'), 2::bigint,
          'an equal jsonb value is not a change');
-- empty GUC -> NULL user
SET LOCAL app.current_user_id = '';
UPDATE customers SET customer_notes = 'other' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT changed_by_user_id FROM customer_audit_log ORDER BY id DESC LIMIT 1), NULL::uuid,
          'empty app.current_user_id -> NULL user');
SELECT throws_ok($$SET LOCAL app.current_user_id = 'not-a-uuid';
                   UPDATE customers SET customer_notes = 'x' WHERE id = '00000000-0000-0000-0000-000000000001'$$,
                 '22P02', NULL, 'a malformed app.current_user_id is an error (the update is refused)');
SELECT is((SELECT customer_notes FROM customers WHERE id = '00000000-0000-0000-0000-000000000001'), 'other',
          '... and the refused update left nothing');
RESET app.current_user_id;

-- ---------------------------------------------------------------------------
-- Lifecycle tracking
-- ---------------------------------------------------------------------------
UPDATE customers SET lifecycle_stage = 'lead' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT lifecycle_stage_changed_at FROM customers WHERE id = '00000000-0000-0000-0000-000000000001'),
          now(), 'stage change sets lifecycle_stage_changed_at = now()');
SELECT results_eq(
    $$SELECT customer_id, company_id, event_type, event_data FROM customer_events$$,
    $$VALUES ('00000000-0000-0000-0000-000000000001'::uuid, '11111111-1111-1111-1111-111111111111'::uuid,
              'stage_changed'::text, '{"from": "prospect", "to": "lead"}'::jsonb)$$,
    'stage_changed event {from, to}');
SELECT is((SELECT changed_fields FROM customer_audit_log ORDER BY id DESC LIMIT 1),
          ARRAY['lifecycle_stage', 'lifecycle_stage_changed_at'],
          'the audit row sees the timestamp set by the BEFORE trigger');
UPDATE customers SET lifecycle_stage_changed_at = '2020-01-01' WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET customer_notes = 'no stage change' WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET lifecycle_stage = 'lead' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT count(*) FROM customer_events), 1::bigint, 'no event unless the stage changes');
SELECT is((SELECT lifecycle_stage_changed_at FROM customers WHERE id = '00000000-0000-0000-0000-000000000001'),
          '2020-01-01'::timestamptz, 'timestamp untouched unless the stage changes');
UPDATE customers SET lifecycle_stage = NULL WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET lifecycle_stage = 'customer' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT results_eq(
    $$SELECT event_data FROM customer_events ORDER BY id$$,
    $$VALUES ('{"from": "prospect", "to": "lead"}'::jsonb), ('{"from": "lead", "to": null}'),
             ('{"from": null, "to": "customer"}')$$,
    'NULL stages are changes too, recorded as JSON null');
SELECT throws_ok($$UPDATE customers SET lifecycle_stage = 'bogus' WHERE id = '00000000-0000-0000-0000-000000000001'$$,
                 '23514', NULL, 'an invalid stage is refused by the CHECK constraint');
SELECT is((SELECT count(*) FROM customer_events), 3::bigint, '... and leaves no event behind');

-- bulk: one event per changed row
INSERT INTO customers (company_id, customer_name)
SELECT '11111111-1111-1111-1111-111111111111', 'Bulk ' || i FROM generate_series(1, 20) i;
UPDATE customers SET lifecycle_stage = 'customer' WHERE customer_name LIKE 'Bulk %';
SELECT is((SELECT count(*) FROM customer_events e JOIN customers c ON c.id = e.customer_id
            WHERE c.customer_name LIKE 'Bulk %' AND e.event_type = 'stage_changed'), 20::bigint,
          'bulk stage change: one event per row');
SELECT is((SELECT count(*) FROM customer_audit_log a JOIN customers c ON c.id = a.record_id
            WHERE c.customer_name LIKE 'Bulk %'), 40::bigint, 'bulk: one audit row per inserted and per updated row');
UPDATE customers SET lifecycle_stage = 'customer' WHERE customer_name LIKE 'Bulk %';
SELECT is((SELECT count(*) FROM customer_audit_log a JOIN customers c ON c.id = a.record_id
            WHERE c.customer_name LIKE 'Bulk %'), 40::bigint, 'bulk no-op update: no audit rows');

-- ---------------------------------------------------------------------------
-- Audit: DELETE
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE before_delete AS SELECT * FROM customers WHERE id = '00000000-0000-0000-0000-000000000001';
DELETE FROM customers WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT results_eq(
    $$SELECT operation, record_id, company_id, new_data IS NULL, changed_fields IS NULL
        FROM customer_audit_log ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('DELETE'::text, '00000000-0000-0000-0000-000000000001'::uuid,
              '11111111-1111-1111-1111-111111111111'::uuid, true, true)$$,
    'DELETE: one audit row, no new data, no changed fields');
SELECT is((SELECT old_data FROM customer_audit_log ORDER BY id DESC LIMIT 1),
          (SELECT to_jsonb(b) FROM before_delete b), 'DELETE: old_data is the deleted row');
SELECT is((SELECT count(*) FROM customer_audit_log WHERE record_id = '00000000-0000-0000-0000-000000000001'),
          10::bigint, 'the audit trail outlives the customer (1 insert, 8 real updates, 1 delete)');
SELECT is((SELECT count(*) FROM customer_events WHERE customer_id = '00000000-0000-0000-0000-000000000001'),
          0::bigint, 'its events went with it (ON DELETE CASCADE)');
SELECT is((SELECT count(*) FROM customer_matching_keys WHERE customer_id = '00000000-0000-0000-0000-000000000001'),
          0::bigint, 'its matching keys went with it');

SELECT * FROM finish();
ROLLBACK;

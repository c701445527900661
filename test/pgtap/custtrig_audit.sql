-- crm_native.audit_log() after install(): one audit row per changed customer
-- row, with to_jsonb() images, sorted changed_fields and the acting user.
BEGIN;
SELECT plan(24);

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() on public');
SELECT is((SELECT implementation || ' ' || function FROM crm_native.status()
            WHERE trigger_name = 'trg_customers_audit_log'),
          'native crm_native.audit_log()', 'the audit trigger is the native one');

INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
SET LOCAL app.current_user_id = '00000000-0000-0000-0000-0000000000f1';

INSERT INTO customers (id, company_id, customer_name, customer_email, tags, metadata) VALUES
    ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@x.com',
     '{a}', '{"n": 1}');
SELECT results_eq(
    $$SELECT table_name, record_id, company_id, operation, old_data, changed_fields, changed_by_user_id
        FROM customer_audit_log$$,
    $$VALUES ('customers', '00000000-0000-0000-0000-000000000001'::uuid, '00000000-0000-0000-0000-00000000000a'::uuid,
              'INSERT', NULL::jsonb, NULL::text[], '00000000-0000-0000-0000-0000000000f1'::uuid)$$,
    'INSERT: one row, no old_data, no changed_fields, the acting user');
SELECT is((SELECT new_data FROM customer_audit_log), (SELECT to_jsonb(c) FROM customers c),
          'INSERT: new_data = to_jsonb(the row)');
SELECT ok((SELECT changed_at = now() FROM customer_audit_log), 'changed_at defaults to now()');

-- UPDATE: changed_fields lists exactly the columns that differ, sorted
CREATE TEMP TABLE old_row AS SELECT to_jsonb(c) AS j FROM customers c;
UPDATE customers SET tags = '{a,b}', customer_email = 'ann@y.com', customer_address = NULL,
                     customer_phone = '123'
 WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT changed_fields FROM customer_audit_log WHERE operation = 'UPDATE'),
          '{customer_email,customer_phone,tags}'::text[],
          'UPDATE: sorted changed_fields; NULL -> value counts, NULL -> NULL does not');
SELECT is((SELECT old_data FROM customer_audit_log WHERE operation = 'UPDATE'), (SELECT j FROM old_row),
          'UPDATE: old_data = to_jsonb(OLD)');
SELECT is((SELECT new_data FROM customer_audit_log WHERE operation = 'UPDATE'), (SELECT to_jsonb(c) FROM customers c),
          'UPDATE: new_data = to_jsonb(NEW)');

-- no-op UPDATEs write nothing
UPDATE customers SET customer_name = 'Ann', tags = '{a,b}';
UPDATE customers SET customer_name = customer_name WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET metadata = '{"n": 1.0}';  -- the same jsonb value (as plpgsql's jsonb comparison says)
SELECT is((SELECT count(*) FROM customer_audit_log), 2::bigint, 'an UPDATE that changes no column writes no row');

-- value -> NULL, lifecycle (BEFORE trigger changes are part of NEW)
UPDATE customers SET customer_phone = NULL, lifecycle_stage = 'lead';
SELECT is((SELECT changed_fields FROM customer_audit_log ORDER BY id DESC LIMIT 1),
          '{customer_phone,lifecycle_stage,lifecycle_stage_changed_at}'::text[],
          'value -> NULL counts; the lifecycle trigger''s stamp is audited too');

-- the acting user: unset or empty -> NULL; not a uuid -> the plpgsql error
SET LOCAL app.current_user_id = '';
UPDATE customers SET customer_notes = 'n1';
SELECT is((SELECT changed_by_user_id FROM customer_audit_log ORDER BY id DESC LIMIT 1), NULL::uuid,
          'empty app.current_user_id: NULL');
RESET app.current_user_id;
UPDATE customers SET customer_notes = 'n2';
SELECT is((SELECT changed_by_user_id FROM customer_audit_log ORDER BY id DESC LIMIT 1), NULL::uuid,
          'unset app.current_user_id: NULL');
SET LOCAL app.current_user_id = 'not-a-uuid';
SELECT throws_ok($$UPDATE customers SET customer_notes = 'n3'$$, '22P02',
                 'invalid input syntax for type uuid: "not-a-uuid"',
                 'app.current_user_id that is not a uuid: the same error as the plpgsql cast');
SELECT is((SELECT customer_notes FROM customers), 'n2', 'and the UPDATE did not happen');
SET LOCAL app.current_user_id = '00000000-0000-0000-0000-0000000000f2';

-- a multi-row UPDATE: one row per changed row only
INSERT INTO customers (company_id, customer_name, source)
SELECT '00000000-0000-0000-0000-00000000000a', 'Bulk ' || i, 'bulk' FROM generate_series(1, 10) i;
CREATE TEMP TABLE n_before AS SELECT count(*) AS n FROM customer_audit_log;
UPDATE customers SET status = CASE WHEN customer_name IN ('Bulk 1', 'Bulk 2', 'Bulk 3') THEN 'inactive' ELSE status END
 WHERE source = 'bulk';
SELECT is((SELECT count(*) FROM customer_audit_log) - (SELECT n FROM n_before), 3::bigint,
          'UPDATE of 10 rows that changes 3: 3 audit rows');
SELECT is((SELECT array_agg(DISTINCT array_to_string(changed_fields, ',')) FROM customer_audit_log
            WHERE id > (SELECT max(id) - 3 FROM customer_audit_log)), '{status}',
          'each lists only status');

-- DELETE
CREATE TEMP TABLE deleted_row AS SELECT to_jsonb(c) AS j FROM customers c WHERE id = '00000000-0000-0000-0000-000000000001';
DELETE FROM customers WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT results_eq(
    $$SELECT operation, record_id, new_data, changed_fields, changed_by_user_id FROM customer_audit_log
       ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('DELETE', '00000000-0000-0000-0000-000000000001'::uuid, NULL::jsonb, NULL::text[],
              '00000000-0000-0000-0000-0000000000f2'::uuid)$$,
    'DELETE: one row, no new_data, no changed_fields');
SELECT is((SELECT old_data FROM customer_audit_log ORDER BY id DESC LIMIT 1), (SELECT j FROM deleted_row),
          'DELETE: old_data = to_jsonb(OLD)');

-- the per-relation cache follows DDL: a new column is audited, a dropped one is not
ALTER TABLE customers ADD COLUMN loyalty_points int;
UPDATE customers SET loyalty_points = 5, status = 'gold' WHERE customer_name = 'Bulk 4';
SELECT is((SELECT changed_fields FROM customer_audit_log ORDER BY id DESC LIMIT 1), '{loyalty_points,status}'::text[],
          'after ADD COLUMN: the new column is compared');
SELECT is((SELECT new_data->'loyalty_points' FROM customer_audit_log ORDER BY id DESC LIMIT 1), '5'::jsonb,
          'and is in new_data');
ALTER TABLE customers DROP COLUMN customer_notes;
UPDATE customers SET loyalty_points = 6 WHERE customer_name = 'Bulk 4';
SELECT is((SELECT changed_fields FROM customer_audit_log ORDER BY id DESC LIMIT 1), '{loyalty_points}'::text[],
          'after DROP COLUMN: still right');
SELECT ok(NOT (SELECT new_data ? 'customer_notes' FROM customer_audit_log ORDER BY id DESC LIMIT 1),
          'and the dropped column is not in new_data');

-- the native result equals what the plpgsql definition computes: changed
-- fields are the jsonb keys whose values differ
CREATE TEMP TABLE snap AS SELECT to_jsonb(c) AS j FROM customers c WHERE customer_name = 'Bulk 5';
UPDATE customers SET metadata = '{"k": [1, 2]}', tags = '{x}', updated_at = updated_at + interval '1 second',
                     merged_into_customer_id = NULL
 WHERE customer_name = 'Bulk 5';
SELECT is((SELECT changed_fields FROM customer_audit_log ORDER BY id DESC LIMIT 1),
          (SELECT array_agg(n.key ORDER BY n.key COLLATE "C") FROM snap,
                  jsonb_each((SELECT to_jsonb(c) FROM customers c WHERE customer_name = 'Bulk 5')) n
            WHERE n.value IS DISTINCT FROM snap.j -> n.key),
          'changed_fields = the keys whose to_jsonb values differ');

SELECT throws_ok(
    $$CREATE TRIGGER zz_misused BEFORE DELETE ON customers FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log();
      DELETE FROM customers WHERE customer_name = 'Bulk 6'$$,
    '39P01', 'crm_native.audit_log: must be declared AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW', 'declared as a BEFORE trigger: a clear error');

SELECT * FROM finish();
ROLLBACK;

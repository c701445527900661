-- crm_native.lifecycle_tracking() after install(): a lifecycle_stage change
-- stamps lifecycle_stage_changed_at = now() and writes a 'stage_changed'
-- event {"from", "to"}; anything else does neither.
BEGIN;
SELECT plan(12);

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() on public');
SELECT is((SELECT implementation || ' ' || function FROM crm_native.status()
            WHERE trigger_name = 'trg_customers_lifecycle_tracking'),
          'native crm_native.lifecycle_tracking()', 'the lifecycle trigger is the native one');
SELECT ok((SELECT pg_get_triggerdef(t.oid) LIKE '%WHEN ((old.lifecycle_stage IS DISTINCT FROM new.lifecycle_stage))%'
             FROM pg_trigger t WHERE t.tgrelid = 'customers'::regclass AND t.tgname = 'trg_customers_lifecycle_tracking'),
          'it fires only when lifecycle_stage changes (WHEN clause)');

INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
INSERT INTO customers (id, company_id, customer_name, lifecycle_stage_changed_at) VALUES
    ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', 'Ann', '2020-01-01'),
    ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-00000000000a', 'Bob', '2020-01-01'),
    ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-00000000000a', 'Cy', '2020-01-01');

UPDATE customers SET lifecycle_stage = 'lead' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT lifecycle_stage_changed_at FROM customers WHERE id = '00000000-0000-0000-0000-000000000001'), now(),
          'stage changed: lifecycle_stage_changed_at = now()');
SELECT results_eq(
    $$SELECT customer_id, company_id, event_type, event_data FROM customer_events$$,
    $$VALUES ('00000000-0000-0000-0000-000000000001'::uuid, '00000000-0000-0000-0000-00000000000a'::uuid,
              'stage_changed', '{"from": "prospect", "to": "lead"}'::jsonb)$$,
    'one stage_changed event {from, to} for the customer and its company');

UPDATE customers SET lifecycle_stage = 'lead', customer_name = 'Ann B.' WHERE id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET customer_name = 'Bobby' WHERE id = '00000000-0000-0000-0000-000000000002';
SELECT is((SELECT count(*) FROM customer_events), 1::bigint, 'same stage or another column: no event');
SELECT is((SELECT lifecycle_stage_changed_at FROM customers WHERE id = '00000000-0000-0000-0000-000000000002'),
          '2020-01-01'::timestamptz, 'and no stamp');

-- to NULL and back, in one multi-row statement
UPDATE customers SET lifecycle_stage = NULL WHERE id IN ('00000000-0000-0000-0000-000000000002',
                                                         '00000000-0000-0000-0000-000000000003');
UPDATE customers SET lifecycle_stage = 'customer';
SELECT set_eq(
    $$SELECT customer_id::text, event_data::text FROM customer_events$$,
    $$VALUES ('00000000-0000-0000-0000-000000000001', '{"to": "lead", "from": "prospect"}'),
             ('00000000-0000-0000-0000-000000000002', '{"to": null, "from": "prospect"}'),
             ('00000000-0000-0000-0000-000000000003', '{"to": null, "from": "prospect"}'),
             ('00000000-0000-0000-0000-000000000001', '{"to": "customer", "from": "lead"}'),
             ('00000000-0000-0000-0000-000000000002', '{"to": "customer", "from": null}'),
             ('00000000-0000-0000-0000-000000000003', '{"to": "customer", "from": null}')$$,
    'NULL stages are JSON nulls; a multi-row UPDATE writes one event per changed row');
SELECT is((SELECT count(*) FROM customers WHERE lifecycle_stage_changed_at = now()), 3::bigint, 'all three stamped');

-- the CHECK constraint still applies to the row the trigger returns
SELECT throws_ok($$UPDATE customers SET lifecycle_stage = 'alien'$$, '23514', NULL,
                 'an invalid stage is still refused by the table''s CHECK');

-- declared without the WHEN clause, it still only acts on a real change
DROP TRIGGER trg_customers_lifecycle_tracking ON customers;
CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION crm_native.lifecycle_tracking();
UPDATE customers SET customer_name = customer_name || '!';
SELECT is((SELECT count(*) FROM customer_events), 6::bigint, 'without WHEN: no event for a non-change');
SELECT throws_ok(
    $$CREATE TRIGGER zz_misused AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION crm_native.lifecycle_tracking();
      UPDATE customers SET customer_name = 'x'$$,
    '39P01', 'crm_native.lifecycle_tracking: must be declared BEFORE UPDATE FOR EACH ROW', 'declared AFTER: a clear error');

SELECT * FROM finish();
ROLLBACK;

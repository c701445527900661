-- Tenancy of the native customers triggers (issue 4, item 5). After
-- install(), the non-owner application role crm_app, under row-level
-- security by app.current_company_id, works on tenant A while tenant B holds
-- a customer with the same email: the native triggers (SECURITY INVOKER, so
-- RLS applies to every statement they run) read and write only A's rows.
BEGIN;
SELECT plan(17);

-- crm_app and its policies come from reference/03_rls.sql; create an
-- equivalent minimal setup when the template does not have them.
DO $$
DECLARE
    tbl text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'crm_app') THEN
        CREATE ROLE crm_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_policy WHERE polrelid = 'public.customers'::regclass) THEN
        FOREACH tbl IN ARRAY ARRAY['customers', 'VC Usage', 'customer_matching_keys', 'customer_events',
                                   'customer_audit_log', 'customer_metrics'] LOOP
            EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', tbl);
            EXECUTE format($p$CREATE POLICY tenant_isolation ON public.%I
                USING (company_id = NULLIF(current_setting('app.current_company_id', true), '')::uuid)$p$, tbl);
        END LOOP;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO crm_app;
GRANT SELECT ON companies, users TO crm_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, "VC Usage", customer_matching_keys, customer_events,
    customer_metrics TO crm_app;
GRANT SELECT, INSERT ON customer_audit_log TO crm_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO crm_app;

SELECT ok(NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'crm_app'),
          'crm_app is subject to row-level security');
SELECT lives_ok($$SELECT crm_native.install()$$, 'install() on public (as the owner)');

-- tenant B, written by the owner
INSERT INTO companies (id, name) VALUES
    ('00000000-0000-0000-0000-00000000000a', 'A'), ('00000000-0000-0000-0000-00000000000b', 'B');
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000b', 'Shared Name',
     'shared@x.com', '+1 555 123 4567', now() - interval '1 year');
CREATE TEMP TABLE b_keys AS SELECT * FROM customer_matching_keys WHERE company_id = '00000000-0000-0000-0000-00000000000b';
CREATE TEMP TABLE b_audit AS SELECT * FROM customer_audit_log WHERE company_id = '00000000-0000-0000-0000-00000000000b';
CREATE TEMP TABLE b_events AS SELECT * FROM customer_events WHERE company_id = '00000000-0000-0000-0000-00000000000b';
GRANT SELECT ON b_keys TO crm_app;

-- tenant A, written by the application role
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = '00000000-0000-0000-0000-00000000000a';
SET LOCAL app.current_user_id = '00000000-0000-0000-0000-0000000000f1';
SELECT lives_ok(
    $$INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone) VALUES
        ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 'Shared Name',
         'shared@x.com', '+1 555 123 4567')$$,
    'crm_app inserts a customer of A with B''s email, phone and name');
SELECT is((SELECT count(*) FROM customer_matching_keys), 3::bigint, 'crm_app sees its 3 keys and no others');
SELECT lives_ok(
    $$UPDATE customers SET customer_email = 'a-only@x.com', customer_phone = NULL, lifecycle_stage = 'lead'
       WHERE id = '00000000-0000-0000-0000-0000000000a1'$$,
    'crm_app updates it (keys rewritten, audit, lifecycle event)');
SELECT is((SELECT count(*) FROM customers WHERE id = '00000000-0000-0000-0000-0000000000b1'), 0::bigint,
          'B''s customer is invisible to crm_app');
SELECT is_empty(
    $$UPDATE customers SET customer_email = 'hijack@x.com' WHERE id = '00000000-0000-0000-0000-0000000000b1' RETURNING id$$,
    'an UPDATE of B''s customer touches nothing');
SELECT throws_ok(
    $$INSERT INTO customers (company_id, customer_name) VALUES ('00000000-0000-0000-0000-00000000000b', 'Intruder')$$,
    '42501', NULL, 'crm_app cannot create a customer in B');

-- a chat row of A with B's email links to A's customer, never to B's
-- (whichever sync trigger, plpgsql or native, is installed)
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES
    ('00000000-0000-0000-0000-00000000000a', 'a-only@x.com', 's1');
SELECT CASE WHEN EXISTS (SELECT FROM pg_trigger WHERE tgrelid = '"VC Usage"'::regclass
                            AND tgname = 'trg_vc_usage_customer_sync_insert')
            THEN is((SELECT customer_id FROM "VC Usage" WHERE session_id = 's1'),
                    '00000000-0000-0000-0000-0000000000a1'::uuid, 'a chat of A is linked to A''s customer')
            ELSE skip('no customer sync trigger in this database', 1) END;
RESET ROLE;  -- the owner looks at the event before the DELETE cascades it away
SELECT is((SELECT company_id FROM customer_events WHERE event_type = 'stage_changed'
                                                  AND customer_id = '00000000-0000-0000-0000-0000000000a1'),
          '00000000-0000-0000-0000-00000000000a'::uuid, 'the lifecycle event is A''s');
SET LOCAL ROLE crm_app;
SELECT lives_ok($$DELETE FROM customers WHERE id = '00000000-0000-0000-0000-0000000000a1'$$,
                'crm_app deletes its customer');
RESET ROLE;

-- checked by the owner, who sees everything
SELECT set_eq($$SELECT * FROM customer_matching_keys WHERE company_id = '00000000-0000-0000-0000-00000000000b'$$,
              $$SELECT * FROM b_keys$$, 'B''s keys are exactly as they were (same rows, same values)');
SELECT set_eq($$SELECT * FROM customer_audit_log WHERE company_id = '00000000-0000-0000-0000-00000000000b'$$,
              $$SELECT * FROM b_audit$$, 'B''s audit rows are exactly as they were');
SELECT set_eq($$SELECT * FROM customer_events WHERE company_id = '00000000-0000-0000-0000-00000000000b'$$,
              $$SELECT * FROM b_events$$, 'B''s events are exactly as they were');
SELECT is((SELECT customer_email FROM customers WHERE id = '00000000-0000-0000-0000-0000000000b1'), 'shared@x.com',
          'B''s customer is unchanged');
SELECT results_eq(
    $$SELECT operation, company_id FROM customer_audit_log
       WHERE record_id = '00000000-0000-0000-0000-0000000000a1' ORDER BY id$$,
    $$VALUES ('INSERT', '00000000-0000-0000-0000-00000000000a'::uuid), ('UPDATE', '00000000-0000-0000-0000-00000000000a'),
             ('DELETE', '00000000-0000-0000-0000-00000000000a')$$,
    'A''s customer: INSERT, UPDATE, DELETE audited under A');
SELECT is((SELECT count(*) FROM customer_audit_log
            WHERE changed_by_user_id = '00000000-0000-0000-0000-0000000000f1'
              AND company_id IS DISTINCT FROM '00000000-0000-0000-0000-00000000000a'), 0::bigint,
          'nothing crm_app did was written under another company');

SELECT * FROM finish();
ROLLBACK;

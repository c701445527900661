-- The reference migration's row-level security (reference/03_rls.sql) with
-- the plpgsql triggers, as the application role crm_app. Not wrapped in one
-- transaction: soft-deleted customers disappear only for transactions that
-- start after the soft delete, and that is tested here. The database is a
-- throwaway clone of crm_template.
\set ON_ERROR_STOP 1
SELECT plan(44);

SELECT ok(NOT rolsuper AND NOT rolbypassrls, 'crm_app: no superuser, no BYPASSRLS')
  FROM pg_roles WHERE rolname = 'crm_app';
SELECT is((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relrowsecurity), 0::bigint,
          'every application table has row-level security enabled');

-- Two tenants with overlapping data, written as the owner.
INSERT INTO companies (id, name) VALUES
    ('11111111-1111-1111-1111-111111111111', 'Company A'),
    ('22222222-2222-2222-2222-222222222222', 'Company B');
INSERT INTO users (id, email, company_id) VALUES
    ('aaaaaaaa-0000-0000-0000-000000000001', 'agent@a.example', '11111111-1111-1111-1111-111111111111'),
    ('bbbbbbbb-0000-0000-0000-000000000001', 'agent@b.example', '22222222-2222-2222-2222-222222222222');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id, view_count)
SELECT c.id, 'Shared Customer ' || i, 'shared' || i || '@example.com', '+1555000' || lpad(i::text, 4, '0'),
       c.name || '_session_' || i, i
  FROM companies c, generate_series(1, 10) i;
UPDATE customers SET lifecycle_stage = 'lead' WHERE customer_name = 'Shared Customer 1';
INSERT INTO customer_conversation_summaries (customer_id, company_id, summary)
SELECT id, company_id, 'summary' FROM customers;
INSERT INTO customer_merge_log (company_id, source_customer_id, target_customer_id)
SELECT company_id, id, id FROM customers WHERE customer_name = 'Shared Customer 2';
-- one soft-deleted customer per company, deleted in the past
UPDATE customers SET deleted_at = now() - interval '1 minute' WHERE customer_name = 'Shared Customer 3';
SELECT is((SELECT count(*) FROM customers), 20::bigint, 'owner: sees both tenants (20 customers)');

-- ---------------------------------------------------------------------------
-- As the application, tenant A.
-- ---------------------------------------------------------------------------
SET ROLE crm_app;
SELECT is((SELECT count(*) FROM customers), 0::bigint, 'app.current_company_id unset: no customer visible');
SELECT is((SELECT count(*) FROM "VC Usage"), 0::bigint, 'app.current_company_id unset: no chat visible');
SET app.current_company_id = '11111111-1111-1111-1111-111111111111';
SET app.current_user_id = 'aaaaaaaa-0000-0000-0000-000000000001';

SELECT is((SELECT count(*) FROM customers), 9::bigint, 'tenant A sees its 9 live customers');
SELECT is((SELECT count(*) FROM customers WHERE customer_name = 'Shared Customer 3'), 0::bigint,
          'soft-deleted customer hidden by RLS (seed test 4.4)');
SELECT is((SELECT count(*) FROM customers WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'customers: none of tenant B');
SELECT is((SELECT count(*) FROM "VC Usage" WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'VC Usage: none of tenant B');
SELECT is((SELECT count(*) FROM "VC Usage"), 10::bigint, 'VC Usage: all 10 of tenant A');
SELECT is((SELECT count(*) FROM customer_matching_keys WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'matching keys: none of tenant B');
SELECT is((SELECT count(*) FROM customer_matching_keys), 30::bigint, 'matching keys: all 30 of tenant A');
SELECT is((SELECT count(*) FROM customer_events WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'events: none of tenant B');
SELECT is((SELECT count(*) FROM customer_events), 11::bigint, 'events: tenant A''s 10 created + 1 stage_changed');
SELECT is((SELECT count(*) FROM customer_metrics WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'metrics: none of tenant B');
SELECT is((SELECT count(*) FROM customer_metrics), 10::bigint, 'metrics: all 10 of tenant A');
SELECT is((SELECT count(*) FROM customer_audit_log WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'audit: none of tenant B');
SELECT is((SELECT count(*) FROM customer_audit_log), 12::bigint, 'audit: tenant A''s 10 inserts + 2 updates');
SELECT is((SELECT count(*) FROM customer_conversation_summaries WHERE company_id <> current_setting('app.current_company_id')::uuid),
          0::bigint, 'summaries: none of tenant B');
SELECT is((SELECT count(*) FROM customer_merge_log), 1::bigint, 'merge log: only tenant A''s');
SELECT is((SELECT array_agg(name) FROM companies), ARRAY['Company A'], 'companies: only its own');
SELECT is((SELECT array_agg(email) FROM users), ARRAY['agent@a.example'], 'users: only its own');

-- Writes into another tenant are refused.
SELECT throws_ok($$INSERT INTO "VC Usage" (company_id, customer_name, session_id)
                   VALUES ('22222222-2222-2222-2222-222222222222', 'Intruder', 'x')$$,
                 '42501', NULL, 'a chat for tenant B is refused');
WITH u AS (UPDATE customers SET customer_notes = 'hacked'
            WHERE company_id = '22222222-2222-2222-2222-222222222222' RETURNING 1)
SELECT is((SELECT count(*) FROM u), 0::bigint, 'tenant B''s customers cannot be updated');
WITH d AS (DELETE FROM "VC Usage" WHERE company_id = '22222222-2222-2222-2222-222222222222' RETURNING 1)
SELECT is((SELECT count(*) FROM d), 0::bigint, 'tenant B''s chats cannot be deleted');
-- without WHERE, only the UPDATE policy applies (no SELECT policy)
UPDATE customers SET customer_notes = 'touched by A';
SELECT throws_ok($$UPDATE customers SET company_id = '22222222-2222-2222-2222-222222222222'$$,
                 '42501', NULL, 'a customer cannot be moved to another tenant');
SELECT throws_ok($$UPDATE customer_audit_log SET operation = 'DELETE'$$, '42501', NULL,
                 'the audit log is append-only for the application');

-- Sync as the application: matches only within tenant A.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Returning', 'SHARED5@example.com', 'app_return');
SELECT is((SELECT c.customer_name FROM "VC Usage" v JOIN customers c ON c.id = v.customer_id
            WHERE v.session_id = 'app_return'), 'Shared Customer 5', 'app role: returning customer linked in its tenant');
SELECT is((SELECT count(*) FROM customers), 9::bigint, 'app role: no duplicate');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Back Again', 'shared3@example.com', '+15550009999', 'app_deleted');
SELECT isnt((SELECT c.customer_name FROM customers c JOIN "VC Usage" v ON v.customer_id = c.id
              WHERE v.session_id = 'app_deleted'), NULL, 'app role: chat of a soft-deleted customer gets a new customer');
SELECT is((SELECT count(*) FROM customers), 10::bigint, '... which is visible');
UPDATE customers SET customer_phone = NULL WHERE customer_name = 'Shared Customer 6';
UPDATE "VC Usage" SET customer_phone = '+1 555 000 6666' WHERE session_id = 'Company A_session_6';
SELECT is((SELECT customer_phone FROM customers WHERE customer_name = 'Shared Customer 6'), '+1 555 000 6666',
          'app role: UPDATE of a linked chat fills its customer');
SELECT is((SELECT changed_by_user_id FROM customer_audit_log ORDER BY id DESC LIMIT 1),
          'aaaaaaaa-0000-0000-0000-000000000001'::uuid, 'app role: audit rows carry app.current_user_id');
SELECT is((SELECT total_conversations FROM customer_metrics m JOIN customers c ON c.id = m.customer_id
            WHERE c.customer_name = 'Shared Customer 5'), 2::bigint, 'app role: metrics maintained');

-- Soft delete by the application works, and hides the customer afterwards.
SELECT lives_ok($$UPDATE customers SET deleted_at = now() WHERE customer_name = 'Shared Customer 7'$$,
                'app role: soft delete (UPDATE ... SET deleted_at = now()) works');
SELECT pg_sleep(0.01);
SELECT is((SELECT count(*) FROM customers WHERE customer_name = 'Shared Customer 7'), 0::bigint,
          'app role: the soft-deleted customer is hidden from later transactions');
BEGIN;
UPDATE customers SET deleted_at = now() WHERE customer_name = 'Shared Customer 8';
SELECT is((SELECT count(*) FROM customers WHERE customer_name = 'Shared Customer 8'), 1::bigint,
          'app role: ... but still visible inside the soft-deleting transaction');
COMMIT;
SELECT throws_ok($$UPDATE customers SET deleted_at = now() - interval '1 day' WHERE customer_name = 'Shared Customer 9'$$,
                 '42501', NULL, 'app role: a back-dated soft delete is refused');
WITH u AS (UPDATE customers SET deleted_at = NULL WHERE customer_name = 'Shared Customer 3' RETURNING 1)
SELECT is((SELECT count(*) FROM u), 0::bigint, 'app role: cannot touch (restore) a soft-deleted customer');

-- Tenant B sees its own data only, untouched by A's work.
SET app.current_company_id = '22222222-2222-2222-2222-222222222222';
SELECT is((SELECT count(*) FROM customers), 9::bigint, 'tenant B: its 9 live customers');
SELECT is((SELECT count(*) FROM customers WHERE customer_notes = 'hacked' OR customer_phone = '+15550009999'),
          0::bigint, 'tenant B: nothing of tenant A''s writes');
SELECT is((SELECT count(*) FROM customer_events WHERE company_id <> '22222222-2222-2222-2222-222222222222'),
          0::bigint, 'tenant B: no event of tenant A');
RESET ROLE;
SELECT is((SELECT count(*) FROM customers WHERE customer_notes = 'touched by A'), 9::bigint,
          'an UPDATE without WHERE touched only tenant A''s live customers');
SELECT is((SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL), 4::bigint,
          'owner: the soft-deleted rows still exist (2 of the setup, 2 by the app)');

SELECT * FROM finish();

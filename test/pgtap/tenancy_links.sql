-- Tenancy of a chat's own customer_id (docs/tenancy.md; contract, sync step
-- 1). As crm_app for company A, under row-level security: a chat that names
-- company B's customer (INSERT with a preset customer_id, UPDATE that moves
-- it) is refused with 23503, nothing of it is written, and nothing of B
-- becomes visible or changes.
BEGIN;
SELECT plan(11);
SELECT ok(count(*) > 0, 'install()') FROM crm_native.install();
INSERT INTO companies (id, name) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'A'), ('bbbbbbbb-0000-0000-0000-000000000002', 'B');
INSERT INTO customers (id, company_id, customer_email) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'aaaaaaaa-0000-0000-0000-000000000001', 'ann@a.example'),
  ('b0000000-0000-0000-0000-00000000000b', 'bbbbbbbb-0000-0000-0000-000000000002', 'bob@b.example');
INSERT INTO "VC Usage" (company_id, customer_email, session_id, user_message)
  VALUES ('bbbbbbbb-0000-0000-0000-000000000002', 'bob@b.example', 'b-1', 'b-chat');
CREATE TEMP TABLE b_before AS
  SELECT (SELECT row(c.*)::text FROM customers c WHERE c.id = 'b0000000-0000-0000-0000-00000000000b') AS customer,
         (SELECT row(m.*)::text FROM customer_metrics m WHERE m.customer_id = 'b0000000-0000-0000-0000-00000000000b') AS metrics,
         (SELECT count(*) FROM customer_audit_log WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS audit,
         (SELECT count(*) FROM customer_events WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS events;
GRANT SELECT ON b_before TO crm_app;

SET LOCAL ROLE crm_app;
SELECT set_config('app.current_company_id', 'aaaaaaaa-0000-0000-0000-000000000001', true);
SELECT throws_ok(
  $$INSERT INTO "VC Usage" (company_id, customer_id, user_message)
    VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-00000000000b', 'cross')$$,
  '23503', NULL, 'INSERT naming another company''s customer is refused (23503)');
SELECT is((SELECT count(*) FROM "VC Usage" WHERE user_message = 'cross'), 0::bigint, 'the refused chat is not written');
SELECT lives_ok(
  $$INSERT INTO "VC Usage" (company_id, customer_id, user_message)
    VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-00000000000a', 'own')$$,
  'INSERT naming its own company''s customer is accepted');
SELECT throws_ok(
  $$UPDATE "VC Usage" SET customer_id = 'b0000000-0000-0000-0000-00000000000b' WHERE user_message = 'own'$$,
  '23503', NULL, 'UPDATE moving a chat to another company''s customer is refused (23503)');
SELECT is((SELECT customer_id FROM "VC Usage" WHERE user_message = 'own'), 'a0000000-0000-0000-0000-00000000000a'::uuid,
          'the chat keeps its customer');
SELECT is((SELECT count(*) FROM customers), 1::bigint, 'crm_app sees only its own company''s customer');
SELECT is((SELECT count(*) FROM customer_metrics), 1::bigint, 'and only its own metrics');
RESET ROLE;

SELECT is((SELECT row(c.*)::text FROM customers c WHERE c.id = 'b0000000-0000-0000-0000-00000000000b'),
          (SELECT customer FROM b_before), 'company B''s customer is unchanged');
SELECT is((SELECT row(m.*)::text FROM customer_metrics m WHERE m.customer_id = 'b0000000-0000-0000-0000-00000000000b'),
          (SELECT metrics FROM b_before), 'company B''s metrics are unchanged');
SELECT is((SELECT count(*) FROM customer_audit_log WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002')
          + (SELECT count(*) FROM customer_events WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002'),
          (SELECT audit + events FROM b_before), 'no audit row or event was written for company B');
SELECT * FROM finish();
ROLLBACK;

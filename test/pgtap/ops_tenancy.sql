-- The operations as the application role crm_app under row-level security
-- (docs/operations.md, docs/tenancy.md): search_customers never returns
-- another tenant's customer; merge_customers works on the tenant's own
-- customers and refuses another tenant's, changing nothing of it; a hostile
-- search_path redirects nothing.
BEGIN;
SELECT plan(24);
SELECT ok(count(*) > 0, 'install()') FROM crm_native.install();
GRANT USAGE ON SCHEMA crm_native TO crm_app;
INSERT INTO companies (id, name) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'A'), ('bbbbbbbb-0000-0000-0000-000000000002', 'B');
INSERT INTO users (id, email, company_id) VALUES
  ('eeeeeeee-0000-0000-0000-000000000001', 'agent@a.example', 'aaaaaaaa-0000-0000-0000-000000000001');
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000001', 'Ann Lee', 'ann@a.example', NULL),
  ('a0000000-0000-0000-0000-000000000002', 'aaaaaaaa-0000-0000-0000-000000000001', 'Annie Lee', 'annie@a.example', '555-123-4567'),
  ('b0000000-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002', 'Ann Lee', 'ann@a.example', '555-123-4567'),
  ('b0000000-0000-0000-0000-000000000002', 'bbbbbbbb-0000-0000-0000-000000000002', 'Zed', 'zed@b.example', NULL);
INSERT INTO "VC Usage" (company_id, customer_email, session_id) VALUES
  ('aaaaaaaa-0000-0000-0000-000000000001', 'ann@a.example', 'a-1'),
  ('aaaaaaaa-0000-0000-0000-000000000001', 'annie@a.example', 'a-2'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'ann@a.example', 'b-1'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'zed@b.example', 'b-2');
CREATE TEMP TABLE b_before AS
  SELECT (SELECT string_agg(row(c.*)::text, ',' ORDER BY c.id) FROM customers c
           WHERE c.company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS customers,
         (SELECT string_agg(row(v.id, v.customer_id)::text, ',' ORDER BY v.id) FROM "VC Usage" v
           WHERE v.company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS chats,
         (SELECT string_agg(row(m.*)::text, ',' ORDER BY m.customer_id) FROM customer_metrics m
           WHERE m.company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS metrics,
         (SELECT count(*) FROM customer_matching_keys WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS keys,
         (SELECT count(*) FROM customer_audit_log WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS audit,
         (SELECT count(*) FROM customer_events WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002') AS events;
GRANT SELECT ON b_before TO crm_app;
-- a hostile search_path: decoy tables, an always-true uuid "=", a now()
CREATE SCHEMA decoy;
CREATE TABLE decoy.customers (LIKE public.customers);
CREATE TABLE decoy.customer_matching_keys (LIKE public.customer_matching_keys);
CREATE TABLE decoy.customer_merge_log (LIKE public.customer_merge_log);
CREATE TABLE decoy."VC Usage" (LIKE public."VC Usage");
CREATE FUNCTION decoy.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR decoy.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = decoy.always);
CREATE FUNCTION decoy.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$;
GRANT USAGE ON SCHEMA decoy TO crm_app;
GRANT ALL ON ALL TABLES IN SCHEMA decoy TO crm_app;

SET LOCAL ROLE crm_app;
SELECT set_config('app.current_company_id', 'aaaaaaaa-0000-0000-0000-000000000001', true);
SELECT set_config('app.current_user_id', 'eeeeeeee-0000-0000-0000-000000000001', true);

-- search
SELECT results_eq(
  $$SELECT customer_id, matched_by FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann@a.example')$$,
  $$VALUES ('a0000000-0000-0000-0000-000000000001'::uuid, 'email'::text)$$,
  'email search: A''s Ann only, not B''s Ann with the same email');
SELECT results_eq(
  $$SELECT customer_id, matched_by FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', '(555) 123-4567')$$,
  $$VALUES ('a0000000-0000-0000-0000-000000000002'::uuid, 'phone'::text)$$,
  'phone search: A''s Annie only, not B''s Ann with the same phone');
SELECT is((SELECT count(*) FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'ann lee')
            WHERE customer_id::text LIKE 'b%'), 0::bigint,
          'name search returns no customer of B');
SELECT throws_ok(
  $$SELECT * FROM crm_native.search_customers('bbbbbbbb-0000-0000-0000-000000000002', 'ann@a.example')$$,
  '22023', NULL, 'a search in company B''s name is refused (B is invisible to this tenant)');

-- merge refused: B's customers are invisible, another company, self
SELECT throws_ok(
  $$SELECT crm_native.merge_customers('b0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000001')$$,
  'P0002', NULL, 'merging two of B''s customers is refused (not visible)');
SELECT throws_ok(
  $$SELECT crm_native.merge_customers('a0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000001')$$,
  'P0002', NULL, 'merging into B''s customer is refused');
SELECT throws_ok(
  $$SELECT crm_native.merge_customers('b0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001')$$,
  'P0002', NULL, 'merging B''s customer into A''s is refused');
SELECT throws_ok(
  $$SELECT crm_native.merge_customers('a0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001')$$,
  '22023', NULL, 'merging a customer into itself is refused');
SELECT is((SELECT count(*) FROM customer_merge_log), 0::bigint, 'no merge log row after the refusals');

-- merge of A's own customers, with a hostile search_path
SET LOCAL search_path = decoy, pg_catalog, public;
SELECT is(crm_native.merge_customers('a0000000-0000-0000-0000-000000000002', 'a0000000-0000-0000-0000-000000000001'),
          'a0000000-0000-0000-0000-000000000001'::uuid, 'crm_app merges Annie into Ann');
RESET search_path;
SELECT is((SELECT count(*) FROM "VC Usage" WHERE customer_id = 'a0000000-0000-0000-0000-000000000001'), 2::bigint,
          'Annie''s chat is Ann''s');
SELECT is((SELECT total_conversations FROM customer_metrics WHERE customer_id = 'a0000000-0000-0000-0000-000000000001'),
          2::bigint, 'Ann''s metrics count both histories');
SELECT is((SELECT count(*) FROM customer_metrics WHERE customer_id = 'a0000000-0000-0000-0000-000000000002'), 0::bigint,
          'Annie''s metrics row is gone');
SELECT is((SELECT customer_phone FROM customers WHERE id = 'a0000000-0000-0000-0000-000000000001'), '555-123-4567',
          'Ann got Annie''s phone');
SELECT is((SELECT deleted_at = now() AND merged_into_customer_id = 'a0000000-0000-0000-0000-000000000001'
             FROM customers WHERE id = 'a0000000-0000-0000-0000-000000000002'), true,
          'Annie is merged into Ann and soft-deleted at now(), not at the decoy''s time');
SELECT is((SELECT merged_by_user_id FROM customer_merge_log), 'eeeeeeee-0000-0000-0000-000000000001'::uuid,
          'the merge log names the user');
SELECT is((SELECT count(*) FROM customer_audit_log WHERE changed_by_user_id = 'eeeeeeee-0000-0000-0000-000000000001'
             AND record_id IN ('a0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000002')),
          2::bigint, 'one audit row per customer, by the user');
SELECT results_eq(
  $$SELECT customer_id, matched_by FROM crm_native.search_customers('aaaaaaaa-0000-0000-0000-000000000001', 'annie@a.example')$$,
  $$VALUES ('a0000000-0000-0000-0000-000000000001'::uuid, 'email'::text)$$,
  'after the merge, Annie''s email finds Ann');
RESET ROLE;

SELECT is((SELECT string_agg(row(c.*)::text, ',' ORDER BY c.id) FROM customers c
            WHERE c.company_id = 'bbbbbbbb-0000-0000-0000-000000000002'), (SELECT customers FROM b_before),
          'B''s customers are unchanged');
SELECT is((SELECT string_agg(row(v.id, v.customer_id)::text, ',' ORDER BY v.id) FROM "VC Usage" v
            WHERE v.company_id = 'bbbbbbbb-0000-0000-0000-000000000002'), (SELECT chats FROM b_before),
          'B''s chats are unchanged');
SELECT is((SELECT string_agg(row(m.*)::text, ',' ORDER BY m.customer_id) FROM customer_metrics m
            WHERE m.company_id = 'bbbbbbbb-0000-0000-0000-000000000002'), (SELECT metrics FROM b_before),
          'B''s metrics are unchanged');
SELECT is((SELECT count(*) FROM decoy.customers) + (SELECT count(*) FROM decoy.customer_matching_keys)
          + (SELECT count(*) FROM decoy.customer_merge_log) + (SELECT count(*) FROM decoy."VC Usage"), 0::bigint,
          'nothing was written to the decoy schema');
SELECT is((SELECT count(*) FROM customer_matching_keys WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002')
          + (SELECT count(*) FROM customer_audit_log WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002')
          + (SELECT count(*) FROM customer_events WHERE company_id = 'bbbbbbbb-0000-0000-0000-000000000002'),
          (SELECT keys + audit + events FROM b_before), 'no key, audit row or event of B was written or removed');
SELECT * FROM finish();
ROLLBACK;

-- crm_native.customer_sync(): a hostile search_path cannot redirect its reads
-- or writes, and under row-level security (role crm_app) it matches only
-- within NEW.company_id and never reads or writes another tenant's rows.
BEGIN;
SELECT plan(11);
SET LOCAL client_min_messages = warning;

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() puts the native triggers in place');

INSERT INTO companies (id, name) VALUES
    ('00000000-0000-0000-0000-00000000000a', 'A'), ('00000000-0000-0000-0000-00000000000b', 'B');

-- Decoys: same table names, an "=" for uuid that matches everything, and a
-- now() that lies, all in a schema searched before pg_catalog.
CREATE SCHEMA decoy;
CREATE TABLE decoy.customers (LIKE public.customers INCLUDING DEFAULTS);
CREATE TABLE decoy.customer_events (LIKE public.customer_events INCLUDING DEFAULTS);
CREATE TABLE decoy.customer_matching_keys (LIKE public.customer_matching_keys INCLUDING DEFAULTS);
INSERT INTO decoy.customers (id, company_id, customer_email, created_at)
    VALUES ('00000000-0000-0000-0000-0000000000dd', '00000000-0000-0000-0000-00000000000a', 'ann@example.com', '1990-01-01');
INSERT INTO decoy.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
    VALUES ('00000000-0000-0000-0000-0000000000dd', '00000000-0000-0000-0000-00000000000a', 'email', 'ann@example.com', 'ann@example.com');
CREATE FUNCTION decoy.always_true(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR decoy.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = decoy.always_true);
CREATE FUNCTION decoy.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '1999-01-01'::timestamptz$$;
CREATE FUNCTION decoy.btrim(text, text) RETURNS text LANGUAGE sql AS $$SELECT 'x'$$;
GRANT USAGE ON SCHEMA decoy TO PUBLIC;
GRANT ALL ON ALL TABLES IN SCHEMA decoy TO PUBLIC;

SET LOCAL search_path = decoy, pg_catalog, public;
INSERT INTO public."VC Usage" (company_id, customer_name, customer_email, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@example.com', 's1');
INSERT INTO public."VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@example.com', '+15551234567', 's2');
RESET search_path;

SELECT is((SELECT count(*)::int FROM decoy.customers), 1, 'hostile search_path: no write to decoy.customers');
SELECT is((SELECT count(*)::int FROM decoy.customer_events), 0, 'hostile search_path: no write to decoy.customer_events');
SELECT isnt((SELECT customer_id FROM public."VC Usage" WHERE session_id = 's1'), '00000000-0000-0000-0000-0000000000dd'::uuid,
            'hostile search_path: the decoy customer is never matched');
SELECT is((SELECT count(DISTINCT customer_id)::int FROM public."VC Usage"), 1,
          'hostile search_path: both chats linked to the one real customer');
SELECT results_eq(
    $$SELECT customer_phone, updated_at > '2000-01-01' FROM public.customers WHERE customer_email = 'ann@example.com'$$,
    $$VALUES ('+15551234567', true)$$,
    'hostile search_path: the fill used pg_catalog.now(), not decoy.now()');

-- Row-level security: the application role sees and writes its tenant only.
INSERT INTO public."VC Usage" (company_id, customer_name, customer_email, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000b', 'Bea', 'bea@example.com', 'b1');
SET LOCAL ROLE crm_app;
SET LOCAL app.current_company_id = '00000000-0000-0000-0000-00000000000a';
INSERT INTO public."VC Usage" (company_id, customer_name, customer_email, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', 'Bea', 'bea@example.com', 'a1');
SELECT is((SELECT count(*)::int FROM public.customers WHERE customer_email = 'bea@example.com'), 1,
          'crm_app sees only its tenant''s new customer');
SELECT throws_ok(
    $$INSERT INTO public."VC Usage" (company_id, customer_name, customer_email, session_id)
      VALUES ('00000000-0000-0000-0000-00000000000b', 'Bea', 'bea@example.com', 'x')$$,
    '42501', NULL, 'crm_app cannot sync a chat into another tenant');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM public.customers WHERE customer_email = 'bea@example.com'), 2,
          'same email in two tenants: two customers');
SELECT isnt((SELECT customer_id FROM public."VC Usage" WHERE session_id = 'a1'),
            (SELECT customer_id FROM public."VC Usage" WHERE session_id = 'b1'),
            'the tenant A chat is not linked to tenant B''s customer');
SELECT is((SELECT c.company_id FROM public.customers c JOIN public."VC Usage" v ON v.customer_id = c.id WHERE v.session_id = 'a1'),
          '00000000-0000-0000-0000-00000000000a'::uuid, 'the customer created under RLS belongs to tenant A');

SELECT * FROM finish();
ROLLBACK;

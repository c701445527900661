-- A hostile search_path cannot redirect the native customers triggers: a
-- schema placed before pg_catalog with look-alike tables, functions and
-- operators gets nothing, and the triggers write the right rows of the
-- triggering table's schema. Phase 1 runs with the plans not yet prepared in
-- this session; phase 2 changes search_path after they are (the plan cache
-- re-parses a statement when search_path changes).
BEGIN;
SELECT plan(14);

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() on public');
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');

CREATE SCHEMA evil;
CREATE TABLE evil.customer_matching_keys (LIKE public.customer_matching_keys INCLUDING DEFAULTS);
CREATE TABLE evil.customer_audit_log (LIKE public.customer_audit_log INCLUDING DEFAULTS);
CREATE TABLE evil.customer_events (LIKE public.customer_events INCLUDING DEFAULTS);
CREATE FUNCTION evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"evil": true}'::jsonb $$;
CREATE FUNCTION evil.jsonb_build_object(text, text, text, text) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT '{"evil": true}'::jsonb $$;
CREATE FUNCTION evil.never(uuid, uuid) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE FUNCTION evil.never(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.never);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.never);
CREATE TYPE evil.uuid AS (x int);
CREATE TYPE evil.text AS (x int);

-- phase 1
SET LOCAL search_path = evil, pg_catalog, public;
INSERT INTO public.customers (id, company_id, customer_name, customer_email, customer_phone) VALUES
    ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@x.com', '+1 555 123 4567');
UPDATE public.customers SET customer_email = 'ann@y.com', lifecycle_stage = 'lead';
RESET search_path;

SELECT is((SELECT count(*) FROM evil.customer_matching_keys) + (SELECT count(*) FROM evil.customer_audit_log)
          + (SELECT count(*) FROM evil.customer_events), 0::bigint, 'phase 1: nothing written into schema evil');
SELECT results_eq($$SELECT key_type, key_value FROM public.customer_matching_keys ORDER BY 1$$,
                  $$VALUES ('email', 'ann@y.com'), ('name', 'Ann'), ('phone', '+1 555 123 4567')$$,
                  'phase 1: keys right (the old email key was found and deleted with pg_catalog.=)');
SELECT is((SELECT new_data FROM public.customer_audit_log ORDER BY id DESC LIMIT 1),
          (SELECT to_jsonb(c) FROM public.customers c), 'phase 1: audit uses pg_catalog.to_jsonb');
SELECT is((SELECT changed_fields FROM public.customer_audit_log ORDER BY id DESC LIMIT 1),
          '{customer_email,lifecycle_stage,lifecycle_stage_changed_at}'::text[], 'phase 1: changed_fields right');
SELECT is((SELECT event_data FROM public.customer_events), '{"from": "prospect", "to": "lead"}'::jsonb,
          'phase 1: event uses pg_catalog.jsonb_build_object');

-- phase 2: the plans exist now; the path turns hostile again
UPDATE public.customers SET customer_email = 'ann@z.com';
SET LOCAL search_path = evil, pg_catalog, public;
UPDATE public.customers SET customer_email = 'ann@w.com', customer_name = NULL, lifecycle_stage = 'customer';
DELETE FROM public.customers;
INSERT INTO public.customers (id, company_id, customer_email) VALUES
    ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-00000000000a', 'bo@x.com');
UPDATE public.customers SET customer_email = 'bo@y.com';
RESET search_path;

SELECT is((SELECT count(*) FROM evil.customer_matching_keys) + (SELECT count(*) FROM evil.customer_audit_log)
          + (SELECT count(*) FROM evil.customer_events), 0::bigint, 'phase 2: nothing written into schema evil');
SELECT results_eq($$SELECT customer_id, key_type, key_value FROM public.customer_matching_keys$$,
                  $$VALUES ('00000000-0000-0000-0000-000000000002'::uuid, 'email', 'bo@y.com')$$,
                  'phase 2: keys right');
SELECT results_eq($$SELECT operation, changed_fields FROM public.customer_audit_log ORDER BY id$$,
                  $$VALUES ('INSERT', NULL::text[]),
                           ('UPDATE', '{customer_email,lifecycle_stage,lifecycle_stage_changed_at}'::text[]),
                           ('UPDATE', '{customer_email}'),
                           ('UPDATE', '{customer_email,customer_name,lifecycle_stage}'),
                           ('DELETE', NULL), ('INSERT', NULL), ('UPDATE', '{customer_email}')$$,
                  'phase 2: audit rows right');
SELECT ok((SELECT bool_and(coalesce(new_data, old_data) ? 'customer_email') FROM public.customer_audit_log),
          'phase 2: every audit image is a real to_jsonb');
SELECT ok(NOT (SELECT bool_or(coalesce(new_data, old_data) ? 'evil') FROM public.customer_audit_log),
          'phase 2: no look-alike to_jsonb ran');

-- the trigger functions carry no SET clause: safety is by qualification
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'crm_native'::regnamespace
            AND proname IN ('matching_keys_sync', 'audit_log', 'lifecycle_tracking') AND proconfig IS NULL
            AND NOT prosecdef), 3::bigint, 'the three trigger functions are SECURITY INVOKER with no SET clause');
-- install() and friends pin their own search_path
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'crm_native'::regnamespace
            AND proname IN ('install', 'uninstall', 'status')
            AND 'search_path=pg_catalog, pg_temp' = ANY (proconfig)), 3::bigint,
          'install(), uninstall(), status() pin search_path = pg_catalog, pg_temp');
SET LOCAL search_path = evil, public;
SELECT is((SELECT count(*) FROM crm_native.status() WHERE implementation = 'native'),
          (SELECT count(*) FROM crm_native.native_trigger), 'status() under a hostile search_path');
RESET search_path;

SELECT * FROM finish();
ROLLBACK;

-- Smoke test of an installed crm_native package: run by debian/tests/smoke
-- (autopkgtest) and test/run.d/debian_package.sh. Run it with
--   psql -X -v ON_ERROR_STOP=1 -f smoke.sql
-- in an empty database where the reference schema (reference/*.sql: tables,
-- the application's plpgsql triggers, row-level security) is loaded. Every
-- check raises an error when it fails; the last line printed is "smoke: ok".
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE EXTENSION crm_native CASCADE;

-- The test-only SQL-callable functions are not in the package: not declared,
-- and the library has no symbol to declare them with.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_proc WHERE proname = '_guard_test') THEN
        RAISE EXCEPTION 'smoke: the test-only function crm_native._guard_test exists';
    END IF;
    BEGIN
        CREATE FUNCTION crm_native._guard_test(kind text) RETURNS text
            AS 'crm_native', 'crm_guard_test' LANGUAGE C STRICT;
        RAISE EXCEPTION 'smoke: the library exports the test-only crm_guard_test';
    EXCEPTION WHEN undefined_function THEN
        NULL;   -- could not find function "crm_guard_test" in file: as wanted
    END;
END $$;

-- version_info() reports the extension version the package installs.
DO $$
DECLARE
    info jsonb := crm_native.version_info();
    available text;
    installed text;
BEGIN
    SELECT default_version INTO available FROM pg_available_extensions WHERE name = 'crm_native';
    SELECT extversion INTO installed FROM pg_extension WHERE extname = 'crm_native';
    -- CREATE EXTENSION without VERSION installs the control file's
    -- default_version. (pg_available_extensions does not list an extension
    -- found through Debian's extension_destdir, as in a build-time test.)
    IF info->>'crm_native' IS DISTINCT FROM installed
       OR (available IS NOT NULL AND installed IS DISTINCT FROM available) THEN
        RAISE EXCEPTION 'smoke: version_info() says %, the control file %, the installed extension %',
            info->>'crm_native', available, installed;
    END IF;
    IF coalesce(info->>'icu', '') = '' OR coalesce(info->>'libphonenumber', '') = '' THEN
        RAISE EXCEPTION 'smoke: version_info() lacks the ICU or libphonenumber version: %', info;
    END IF;
    RAISE NOTICE 'version_info: %', info;
END $$;

-- install() replaces the application's triggers with native ones.
DO $$
DECLARE
    n_native int;
    n_other int;
BEGIN
    PERFORM crm_native.install();
    SELECT count(*) FILTER (WHERE implementation = 'native'),
           count(*) FILTER (WHERE implementation <> 'native')
      INTO n_native, n_other FROM crm_native.status();
    IF n_native = 0 OR n_other <> 0 THEN
        RAISE EXCEPTION 'smoke: after install() % native and % other triggers', n_native, n_other;
    END IF;
END $$;

-- A chat creates its customer, with matching keys and metrics.
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000a001', 'Smoke Co');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
VALUES ('00000000-0000-0000-0000-00000000a001', '  Zoë   Smith ', ' Zoe.Smith@Example.COM ',
        '+1 (555) 123-4567', 'smoke-1');
-- A second chat of the same person (same email, another session) links to it.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('00000000-0000-0000-0000-00000000a001', 'Zoe Smith', 'zoe.smith@example.com', 'smoke-2');

DO $$
DECLARE
    cust uuid;
    n int;
    keys jsonb;
    m record;
BEGIN
    SELECT count(*) INTO n FROM customers;
    IF n <> 1 THEN
        RAISE EXCEPTION 'smoke: % customers, expected 1', n;
    END IF;
    SELECT id INTO cust FROM customers;
    SELECT count(*) INTO n FROM "VC Usage" WHERE customer_id IS DISTINCT FROM cust;
    IF n <> 0 THEN
        RAISE EXCEPTION 'smoke: % chats not linked to the customer', n;
    END IF;
    SELECT count(*), jsonb_object_agg(key_type, normalized_value) INTO n, keys
      FROM customer_matching_keys WHERE customer_id = cust;
    IF n <> 3 OR keys IS DISTINCT FROM jsonb_build_object(
           'email', 'zoe.smith@example.com',
           'phone', '15551234567',
           'name', crm_native.normalize_name('Zoë Smith')) THEN
        RAISE EXCEPTION 'smoke: % matching keys %', n, keys;
    END IF;
    SELECT * INTO m FROM customer_metrics WHERE customer_id = cust;
    IF m.total_conversations IS DISTINCT FROM 2::bigint OR m.total_sessions IS DISTINCT FROM 2::bigint THEN
        RAISE EXCEPTION 'smoke: metrics % conversations, % sessions (expected 2, 2)',
            m.total_conversations, m.total_sessions;
    END IF;
    SELECT count(*) INTO n FROM crm_native.verify_metrics();
    IF n <> 0 THEN
        RAISE EXCEPTION 'smoke: verify_metrics() reports % customers', n;
    END IF;
END $$;

-- uninstall() puts the application's triggers back; the extension drops.
DO $$
BEGIN
    PERFORM crm_native.uninstall();
    IF EXISTS (SELECT FROM crm_native.status() WHERE implementation = 'native') THEN
        RAISE EXCEPTION 'smoke: native triggers left after uninstall()';
    END IF;
END $$;
DROP EXTENSION crm_native;

\echo smoke: ok

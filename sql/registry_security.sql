-- The extension's registries and schema cannot be turned against the roles
-- that call its functions (src/sql/00_check_schema.sql, 50_install.sql,
-- src/pg/trigger_restore.cpp). Found by an independent tester: a role given
-- write access to crm_native.replaced_trigger (as docs/install.md asked up
-- to 0.7.0) made the superuser's uninstall() run ALTER ROLE ... SUPERUSER,
-- and the owner of a schema named crm_native created before the extension
-- became a superuser through the partition event trigger.
\set VERBOSITY terse
SET client_min_messages = warning;
\getenv abs_srcdir PG_ABS_SRCDIR
\set schema_file :abs_srcdir '/reference/01_schema.sql'
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
SELECT count(*) AS records FROM crm_native.replaced_trigger;
SELECT schema_name FROM crm_native.installed_schema;

-- 1. Other roles read the registries but cannot write them, and the
--    SECURITY DEFINER writers that install() and uninstall() use record only
--    what the catalogs say and forget nothing an installed schema needs.
CREATE ROLE crm_mallory;
GRANT USAGE ON SCHEMA crm_native TO crm_mallory;
SET ROLE crm_mallory;
UPDATE crm_native.replaced_trigger SET definition = 'ALTER ROLE crm_mallory SUPERUSER; ' || definition;
DELETE FROM crm_native.replaced_trigger;
INSERT INTO crm_native.installed_schema VALUES ('elsewhere');
DELETE FROM crm_native.installed_schema;
SELECT count(*) AS readable_records FROM crm_native.replaced_trigger;
SELECT crm_native._forget_replaced_trigger('public', 'customers', 'trg_customers_audit_log');
SELECT crm_native._forget_installed_schema('public');
-- the native trigger of that name is not an application trigger to record
SELECT crm_native._record_replaced_trigger(t.oid)
  FROM pg_trigger t WHERE t.tgrelid = 'public.customers'::regclass AND t.tgname = 'trg_customers_audit_log';
-- the statistics of every database are not every role's to read
SELECT count(*) FROM crm_native._trigger_stats();
RESET ROLE;
SELECT count(*) AS records,
       count(*) FILTER (WHERE definition LIKE 'CREATE TRIGGER % EXECUTE FUNCTION public.%()') AS as_recorded
  FROM crm_native.replaced_trigger;
SELECT schema_name FROM crm_native.installed_schema;

-- 2. A record edited since install() recorded it (by a superuser, or by a
--    role granted write access before 0.8.0) is restored only if it is
--    exactly one CREATE TRIGGER of that trigger on that table; otherwise
--    uninstall() fails and changes nothing.
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = 'ALTER ROLE crm_mallory SUPERUSER; ' || definition
 WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = 'ALTER ROLE crm_mallory SUPERUSER'
 WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = replace(definition, 'ON public.customers', 'ON public.companies')
 WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = replace(definition, 'trg_customers_audit_log', 'trg_other')
 WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = replace(definition, 'CREATE TRIGGER', 'CREATE OR REPLACE TRIGGER')
 WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
SELECT rolsuper FROM pg_roles WHERE rolname = 'crm_mallory';

-- 3. A trigger is restored with its table's owner's rights: a superuser's
--    uninstall() cannot give customers a trigger function its owner may
--    not call.
CREATE ROLE crm_table_owner;
ALTER TABLE public.customers OWNER TO crm_table_owner;
REVOKE EXECUTE ON FUNCTION public.log_customer_changes() FROM PUBLIC;
SELECT count(*) FROM crm_native.uninstall();
GRANT EXECUTE ON FUNCTION public.log_customer_changes() TO crm_table_owner;
SELECT trigger_name, implementation, function FROM crm_native.uninstall()
 WHERE table_name = 'customers' ORDER BY 1;
SELECT count(*) AS records FROM crm_native.replaced_trigger;
SELECT count(*) AS installed_schemas FROM crm_native.installed_schema;
ALTER TABLE public.customers OWNER TO CURRENT_USER;
REVOKE EXECUTE ON FUNCTION public.log_customer_changes() FROM crm_table_owner;
GRANT EXECUTE ON FUNCTION public.log_customer_changes() TO PUBLIC;

-- 4. A schema with native triggers but no record of install() under its
--    name (restored from pg_dump -n, which leaves out the registries; or
--    renamed) is refused: uninstall() would drop the native triggers and
--    restore nothing. Recording it as installed lets uninstall() go on.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
DELETE FROM crm_native.replaced_trigger WHERE schema_name = 'public';
DELETE FROM crm_native.installed_schema WHERE schema_name = 'public';
SELECT count(*) FROM crm_native.uninstall();
SELECT count(*) FILTER (WHERE implementation = 'native') AS still_native FROM crm_native.status();
INSERT INTO crm_native.installed_schema (schema_name) VALUES ('public');
SELECT count(*) AS triggers_left FROM crm_native.uninstall();

-- 5. Records of another installed schema that was dropped do not stop
--    uninstall() of one that installed nothing (it refused with "triggers
--    are recorded for schema ... which no longer exists").
CREATE SCHEMA gone_app;
CREATE SCHEMA bare_app;
SET client_min_messages = warning;
SET search_path = gone_app, public;
\set ECHO none
\i :schema_file
SET search_path = bare_app, public;
\i :schema_file
\set ECHO all
RESET search_path;
CREATE FUNCTION gone_app.app_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR UPDATE OR DELETE ON gone_app.customers
    FOR EACH ROW EXECUTE FUNCTION gone_app.app_audit();
SELECT count(*) > 0 AS installed FROM crm_native.install('gone_app');
SELECT count(*) > 0 AS installed FROM crm_native.install('bare_app');
DROP SCHEMA gone_app CASCADE;
RESET client_min_messages;
SELECT count(*) AS triggers_left FROM crm_native.uninstall('bare_app');
SELECT schema_name FROM crm_native.installed_schema ORDER BY 1;
DROP SCHEMA bare_app CASCADE;
DELETE FROM crm_native.replaced_trigger WHERE schema_name = 'gone_app';
DELETE FROM crm_native.installed_schema WHERE schema_name = 'gone_app';

-- 6. CREATE EXTENSION refuses a schema crm_native that another role owns,
--    or in which another role may create objects.
DROP EXTENSION crm_native;
DROP SCHEMA crm_native;  -- DROP EXTENSION leaves the schema the control file named
CREATE SCHEMA crm_native AUTHORIZATION crm_mallory;
CREATE EXTENSION crm_native;
ALTER SCHEMA crm_native OWNER TO CURRENT_USER;
GRANT CREATE ON SCHEMA crm_native TO crm_mallory;
CREATE EXTENSION crm_native;
REVOKE CREATE ON SCHEMA crm_native FROM crm_mallory;
CREATE EXTENSION crm_native;
SELECT extversion IS NOT NULL AS created FROM pg_extension WHERE extname = 'crm_native';
REVOKE USAGE ON SCHEMA crm_native FROM crm_mallory;
DROP ROLE crm_mallory;
DROP ROLE crm_table_owner;

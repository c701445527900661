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

-- 1. Other roles read the registries but cannot write them, nor call the
--    SECURITY DEFINER writers that install() and uninstall() use (keyed by
--    schema name, they would let a role write under a name it took over;
--    found by an independent review); granted, the writers record only what
--    the catalogs say and forget nothing an installed schema needs.
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
RESET ROLE;
GRANT EXECUTE ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                          crm_native._forget_installed_schema(text)
  TO crm_mallory;
SET ROLE crm_mallory;
SELECT crm_native._forget_replaced_trigger('public', 'customers', 'trg_customers_audit_log');
SELECT crm_native._forget_installed_schema('public');
-- the native trigger of that name is not an application trigger to record
SELECT crm_native._record_replaced_trigger(t.oid)
  FROM pg_trigger t WHERE t.tgrelid = 'public.customers'::regclass AND t.tgname = 'trg_customers_audit_log';
RESET ROLE;
REVOKE EXECUTE ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                           crm_native._forget_installed_schema(text)
  FROM crm_mallory;
SET ROLE crm_mallory;
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
-- nor a trigger that calls (or whose WHEN clause calls) a function of a
-- role whose rights the table's owner does not have: a record planted up to
-- 0.7.0 would have run that role's code as whoever writes the table
CREATE FUNCTION public.mallory_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION public.mallory_spy(customers) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION public.mallory_spy_text(text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
ALTER FUNCTION public.mallory_audit() OWNER TO crm_mallory;
ALTER FUNCTION public.mallory_spy(customers) OWNER TO crm_mallory;
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = replace(definition, 'public.log_customer_changes()', 'public.mallory_audit()')
 WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
BEGIN;
UPDATE crm_native.replaced_trigger SET definition = replace(definition, 'WHEN (', 'WHEN (public.mallory_spy(new.*) AND ')
 WHERE trigger_name = 'trg_customers_lifecycle_tracking';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
-- and while another role may write the registries (a grant made by hand,
-- or restored from a 0.7.0 dump), uninstall() replays nothing
GRANT UPDATE (definition) ON crm_native.replaced_trigger TO crm_mallory;
SELECT count(*) FROM crm_native.uninstall();
REVOKE ALL ON crm_native.replaced_trigger FROM crm_mallory;
GRANT DELETE ON crm_native.installed_schema TO PUBLIC;
DO $$
BEGIN
    PERFORM crm_native.uninstall();
    RAISE NOTICE 'uninstalled';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'refused, naming every role: %', SQLERRM LIKE '%crm_mallory may delete crm_native.installed_schema%';
END $$;
REVOKE DELETE ON crm_native.installed_schema FROM PUBLIC;
SELECT crm_native._registry_problems() AS problems;
-- nor while a role may put triggers on them, or a trigger is on them: the
-- SECURITY DEFINER writers, which any role may call, write them as the
-- extension's owner, and refuse to (a trigger there made its owner a
-- superuser; found by an independent review)
GRANT TRIGGER ON crm_native.replaced_trigger TO crm_mallory;
SELECT crm_native._registry_problems() AS problems;
CREATE FUNCTION public.mallory_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'ALTER ROLE crm_mallory SUPERUSER'; RETURN NULL; END $$;
ALTER FUNCTION public.mallory_escalate() OWNER TO crm_mallory;
SET ROLE crm_mallory;
CREATE TRIGGER mallory_t AFTER DELETE ON crm_native.replaced_trigger
    FOR EACH STATEMENT EXECUTE FUNCTION public.mallory_escalate();
RESET ROLE;
SELECT crm_native._forget_replaced_trigger('x', 'x', 'x');
SELECT crm_native._record_installed_schema('public');
SELECT count(*) FROM crm_native.uninstall();
SELECT rolsuper FROM pg_roles WHERE rolname = 'crm_mallory';
DROP TRIGGER mallory_t ON crm_native.replaced_trigger;
REVOKE TRIGGER ON crm_native.replaced_trigger FROM crm_mallory;
DROP FUNCTION public.mallory_escalate();
-- a domain's CHECK runs code too: a WHEN clause that casts to another
-- role's domain is refused like a call of its function
CREATE DOMAIN public.mallory_watched AS text CHECK (public.mallory_spy_text(VALUE));
ALTER DOMAIN public.mallory_watched OWNER TO crm_mallory;
BEGIN;
UPDATE crm_native.replaced_trigger
   SET definition = replace(definition, 'FOR EACH ROW', 'FOR EACH ROW WHEN ((new.customer_email)::public.mallory_watched IS NOT NULL)')
 WHERE trigger_name = 'trg_customers_matching_keys_sync';
SELECT count(*) FROM crm_native.uninstall();
ROLLBACK;
-- and a record nobody has vouched for (written before 0.8.0, when table
-- owners could write the registry, or restored from such a dump) is not
-- replayed until a superuser has checked it: one CREATE TRIGGER of the
-- right name on the right table can still be a BEFORE trigger that drops
-- every row (found by an independent review)
UPDATE crm_native.replaced_trigger SET verified = false WHERE trigger_name = 'trg_customers_audit_log';
SELECT count(*) FROM crm_native.uninstall();
UPDATE crm_native.replaced_trigger SET verified = true;

-- 3. A trigger is restored with its table's owner's rights: a superuser's
--    uninstall() cannot give customers a trigger function its owner may
--    not call.
CREATE ROLE crm_registry_owner;
ALTER TABLE public.customers OWNER TO crm_registry_owner;
REVOKE EXECUTE ON FUNCTION public.log_customer_changes() FROM PUBLIC;
SELECT count(*) FROM crm_native.uninstall();
GRANT EXECUTE ON FUNCTION public.log_customer_changes() TO crm_registry_owner;
SELECT trigger_name, implementation, function FROM crm_native.uninstall()
 WHERE table_name = 'customers' ORDER BY 1;
SELECT count(*) AS records FROM crm_native.replaced_trigger;
SELECT count(*) AS installed_schemas FROM crm_native.installed_schema;
ALTER TABLE public.customers OWNER TO CURRENT_USER;
REVOKE EXECUTE ON FUNCTION public.log_customer_changes() FROM crm_registry_owner;
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

-- A record planted through the SECURITY DEFINER writer for a schema of the
-- same name before it existed is not replayed: nothing stood in for it.
SELECT current_database() AS dbname \gset
GRANT CREATE ON DATABASE :"dbname" TO crm_mallory;
-- (a table owner a superuser trusted with install(): EXECUTE on the writers)
GRANT EXECUTE ON FUNCTION crm_native._record_replaced_trigger(oid) TO crm_mallory;
SET ROLE crm_mallory;
CREATE SCHEMA planted;
CREATE TABLE planted.customers (id int);
CREATE TRIGGER trg_customers_audit_log AFTER INSERT ON planted.customers
    FOR EACH ROW EXECUTE FUNCTION public.mallory_audit();
SELECT crm_native._record_replaced_trigger(t.oid)
  FROM pg_trigger t WHERE t.tgrelid = 'planted.customers'::regclass;
DROP SCHEMA planted CASCADE;
RESET ROLE;
REVOKE CREATE ON DATABASE :"dbname" FROM crm_mallory;
REVOKE EXECUTE ON FUNCTION crm_native._record_replaced_trigger(oid) FROM crm_mallory;
SELECT schema_name, table_name, trigger_name FROM crm_native.replaced_trigger;
CREATE SCHEMA planted;
SET client_min_messages = warning;
SET search_path = planted, public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET search_path;
RESET client_min_messages;
SELECT count(*) AS triggers_left FROM crm_native.uninstall('planted');
SELECT count(*) AS records FROM crm_native.replaced_trigger;
DROP SCHEMA planted CASCADE;

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
-- ... or that still holds another role's objects (given to a superuser, the
-- schema keeps them): an overload there would win over the extension's
CREATE FUNCTION crm_native._customer_keys(varchar, varchar, varchar) RETURNS SETOF record LANGUAGE sql AS 'SELECT NULL::record';
ALTER FUNCTION crm_native._customer_keys(varchar, varchar, varchar) OWNER TO crm_mallory;
CREATE EXTENSION crm_native;
DROP FUNCTION crm_native._customer_keys(varchar, varchar, varchar);
CREATE EXTENSION crm_native;
SELECT extversion IS NOT NULL AS created FROM pg_extension WHERE extname = 'crm_native';

-- 7. The install and upgrade scripts resolve their operators in pg_catalog
--    only. CREATE EXTENSION puts pg_trgm's schema on the path (a tenant's,
--    when it loaded pg_trgm there), and an operator there with the exact
--    argument types ran as the superuser during ALTER EXTENSION UPDATE
--    (found by an independent review; the upgrade script starts with the
--    same line, SCRIPT_SEARCH_PATH in the Makefile).
CREATE TABLE public.operator_calls (called_by name);
CREATE FUNCTION public.spy_eq(oid, regclass) RETURNS boolean LANGUAGE sql
    AS 'INSERT INTO public.operator_calls VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2::oid';
CREATE FUNCTION public.spy_eq(oid, regnamespace) RETURNS boolean LANGUAGE sql
    AS 'INSERT INTO public.operator_calls VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2::oid';
CREATE FUNCTION public.spy_eq(oid, int4) RETURNS boolean LANGUAGE sql
    AS 'INSERT INTO public.operator_calls VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2::oid';
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.spy_eq);
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regnamespace, FUNCTION = public.spy_eq);
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = int4, FUNCTION = public.spy_eq);
DROP EXTENSION crm_native;
CREATE EXTENSION crm_native;
SELECT count(*) AS operator_calls FROM public.operator_calls;
DROP OPERATOR public.= (oid, regclass);
DROP OPERATOR public.= (oid, regnamespace);
DROP OPERATOR public.= (oid, int4);
DROP FUNCTION public.spy_eq(oid, regclass);
DROP FUNCTION public.spy_eq(oid, regnamespace);
DROP FUNCTION public.spy_eq(oid, int4);
DROP TABLE public.operator_calls;

-- 8. search_customers() calls pg_trgm's similarity() and operator with
--    text arguments: pg_trgm's schema may be a tenant's, and its overload
--    for a varchar customer_name ran as whoever searched (found by an
--    independent review).
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
ALTER TABLE customers ALTER COLUMN customer_name TYPE varchar(200);
INSERT INTO companies (id, name) VALUES ('5ea7c400-0000-4000-8000-000000000001', 'Search');
INSERT INTO "VC Usage" (company_id, customer_name, session_id)
  VALUES ('5ea7c400-0000-4000-8000-000000000001', 'Secret Person', 'sp');
CREATE TABLE public.similarity_calls (called_by name, name text);
GRANT INSERT ON public.similarity_calls TO PUBLIC;
GRANT CREATE ON SCHEMA public TO crm_mallory;
SELECT extnamespace::regnamespace AS trgm_schema FROM pg_extension WHERE extname = 'pg_trgm';
SET ROLE crm_mallory;
CREATE FUNCTION public.similarity(varchar, text) RETURNS real LANGUAGE sql
    AS 'INSERT INTO public.similarity_calls VALUES (current_user, $1); SELECT 1::real';
RESET ROLE;
SELECT customer_name FROM crm_native.search_customers('5ea7c400-0000-4000-8000-000000000001', 'Secret Persn');
SELECT count(*) AS overload_calls FROM public.similarity_calls;
DROP FUNCTION public.similarity(varchar, text);
REVOKE CREATE ON SCHEMA public FROM crm_mallory;
DROP TABLE public.similarity_calls;
SELECT count(*) AS triggers_left FROM crm_native.uninstall();

-- 9. A role that may write the registries through pg_write_all_data (or
--    membership in their owner) counts like a grant to it.
GRANT pg_write_all_data TO crm_mallory;
SELECT crm_native._registry_problems() LIKE '%crm_mallory may update crm_native.replaced_trigger%' AS noticed;
REVOKE pg_write_all_data FROM crm_mallory;
--    A NOINHERIT member gets the privilege with SET ROLE: it counts too.
ALTER ROLE crm_mallory NOINHERIT;
GRANT pg_write_all_data TO crm_mallory;
SELECT crm_native._registry_problems() LIKE '%crm_mallory may update crm_native.replaced_trigger as pg_write_all_data%' AS noticed_noinherit;
REVOKE pg_write_all_data FROM crm_mallory;
CREATE ROLE crm_mallory_writers;
GRANT INSERT (definition) ON crm_native.replaced_trigger TO crm_mallory_writers;
GRANT crm_mallory_writers TO crm_mallory;
SELECT crm_native._registry_problems() LIKE '%crm_mallory may insert crm_native.replaced_trigger as crm_mallory_writers%' AS noticed_noinherit_column;
REVOKE crm_mallory_writers FROM crm_mallory;
REVOKE ALL ON crm_native.replaced_trigger FROM crm_mallory_writers;
DROP ROLE crm_mallory_writers;
ALTER ROLE crm_mallory INHERIT;
SELECT crm_native._registry_problems() IS NULL AS nothing_left;

-- 10. verify_metrics() and search_customers() read only a CRM schema: a
--     view in place of one of its tables would run the view owner's code as
--     the caller, a superuser maybe (found by an independent review).
CREATE TABLE public.view_calls (called_by name);
GRANT INSERT ON public.view_calls TO PUBLIC;
CREATE SCHEMA viewy;
SET client_min_messages = warning;
SET search_path = viewy, public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET search_path;
RESET client_min_messages;
CREATE FUNCTION viewy.spy() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.view_calls VALUES (current_user); RETURN true; END $$;
DROP TABLE viewy.customer_metrics;
CREATE VIEW viewy.customer_metrics AS
  SELECT NULL::uuid AS id, NULL::uuid AS customer_id, NULL::uuid AS company_id, 0::bigint AS total_conversations,
         0::bigint AS total_sessions, 0::bigint AS total_views, NULL::timestamptz AS first_interaction_at,
         NULL::timestamptz AS last_interaction_at WHERE viewy.spy();
SELECT * FROM crm_native.verify_metrics('viewy');
SELECT * FROM crm_native.search_customers('5ea7c400-0000-4000-8000-000000000001', 'Secret', 5, 'viewy');
SELECT count(*) AS view_calls FROM public.view_calls;
DROP SCHEMA viewy CASCADE;
DROP TABLE public.view_calls;

-- 11. A trigger another role left on a partition tree of its own does not
--     fail uninstall() of a schema (dropping the parent's took its clone on
--     the partition, which uninstall() then dropped again).
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
RESET client_min_messages;
CREATE TABLE public.left_parent (x int) PARTITION BY LIST (x);
CREATE TABLE public.left_child PARTITION OF public.left_parent FOR VALUES IN (1);
CREATE TRIGGER left_t AFTER INSERT ON public.left_parent FOR EACH ROW EXECUTE FUNCTION crm_native.metrics_insert('partition');
SELECT count(*) AS triggers_left FROM crm_native.uninstall() WHERE implementation = 'native';
DROP TABLE public.left_parent;

-- 12. The registry writers install() and uninstall() require EXECUTE on
--     (_require_registry_writers) are exactly the extension's SECURITY
--     DEFINER functions closed to PUBLIC (the REVOKE of 50_install.sql and
--     of the update script): the two lists are kept in step by this test.
WITH checked AS (
    SELECT m[1]::regprocedure AS fn
      FROM pg_proc p, regexp_matches(p.prosrc, '''(crm_native\.[a-z_]+\([^)]*\))''', 'g') AS m
     WHERE p.oid = 'crm_native._require_registry_writers(text)'::regprocedure
), closed AS (
    SELECT p.oid::regprocedure AS fn
      FROM pg_proc p
     WHERE p.pronamespace = 'crm_native'::regnamespace AND p.prosecdef
       AND NOT EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
)
SELECT (SELECT count(*) FROM checked) AS checked,
       (SELECT array_agg(fn::text ORDER BY fn::text) FROM (SELECT fn FROM checked EXCEPT SELECT fn FROM closed) x) AS checked_not_closed,
       (SELECT array_agg(fn::text ORDER BY fn::text) FROM (SELECT fn FROM closed EXCEPT SELECT fn FROM checked) x) AS closed_not_checked;

DROP FUNCTION public.mallory_audit();
DROP FUNCTION public.mallory_spy(customers);
DROP DOMAIN public.mallory_watched;
DROP FUNCTION public.mallory_spy_text(text);
DROP ROLE crm_mallory;
DROP ROLE crm_registry_owner;

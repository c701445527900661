-- crm_native.install() / uninstall() / status() (src/sql/50_install.sql).
-- Runs on schema "crm two" (a name that needs quoting), loaded from the
-- reference migration, with application triggers whose functions have other
-- names than the reference's: install() must find them by trigger name.
\set VERBOSITY terse
SET client_min_messages = warning;
\getenv abs_srcdir PG_ABS_SRCDIR
\set schema_file :abs_srcdir '/reference/01_schema.sql'
CREATE SCHEMA "crm two";
SET search_path = "crm two", public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET client_min_messages;
RESET search_path;

-- The application's own triggers, named as the registry expects.
CREATE FUNCTION "crm two".legacy_keys() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION "crm two".legacy_audit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION "crm two".legacy_stage() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.lifecycle_stage_changed_at := now(); RETURN NEW; END $$;
CREATE FUNCTION "crm two".touch() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER trg_customers_matching_keys_sync AFTER INSERT OR UPDATE ON "crm two".customers
    FOR EACH ROW EXECUTE FUNCTION "crm two".legacy_keys();
CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR UPDATE OR DELETE ON "crm two".customers
    FOR EACH ROW EXECUTE FUNCTION "crm two".legacy_audit();
CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE OF lifecycle_stage ON "crm two".customers
    FOR EACH ROW WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage)
    EXECUTE FUNCTION "crm two".legacy_stage();
-- not one crm_native replaces: install() leaves it alone
CREATE TRIGGER trg_customers_touch BEFORE UPDATE ON "crm two".customers
    FOR EACH ROW EXECUTE FUNCTION "crm two".touch();
-- states uninstall() must restore too
ALTER TABLE "crm two".customers DISABLE TRIGGER trg_customers_audit_log;
COMMENT ON TRIGGER trg_customers_matching_keys_sync ON "crm two".customers IS 'keys, the old way';

-- Everything about the triggers on the tables crm_native attaches to.
CREATE TEMP TABLE before_install AS
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled,
       obj_description(t.oid, 'pg_trigger') AS comment
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = '"crm two"'::regnamespace AND NOT t.tgisinternal;

SELECT * FROM crm_native.status('crm two');

-- install: the registered customers triggers become native; the other
-- registered triggers (on "VC Usage") are counted from the registry.
SELECT * FROM crm_native.install('crm two') WHERE table_name = 'customers';
SELECT (SELECT count(*) FROM crm_native.status('crm two') WHERE implementation = 'native')
     = (SELECT count(*) FROM crm_native.native_trigger) AS every_registered_trigger_is_native;
SELECT schema_name, table_name, trigger_name, definition, enabled, comment, function_name
  FROM crm_native.replaced_trigger ORDER BY trigger_name;
-- a native trigger keeps the enabled state of the trigger it replaced
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = '"crm two".customers'::regclass AND NOT tgisinternal ORDER BY tgname;

-- idempotent: a second call changes nothing and reports the same status
CREATE TEMP TABLE after_first AS
SELECT t.oid, t.tgname FROM pg_trigger t
 WHERE t.tgrelid IN ('"crm two".customers'::regclass, '"crm two"."VC Usage"'::regclass) AND NOT t.tgisinternal;
CREATE TEMP TABLE status_first AS SELECT * FROM crm_native.status('crm two');
CREATE TEMP TABLE status_second AS SELECT * FROM crm_native.install('crm two');
SELECT (SELECT count(*) FROM (TABLE status_first EXCEPT TABLE status_second) d)
     + (SELECT count(*) FROM (TABLE status_second EXCEPT TABLE status_first) d) AS status_differences;
SELECT count(*) AS triggers_recreated
  FROM pg_trigger t
 WHERE t.tgrelid IN ('"crm two".customers'::regclass, '"crm two"."VC Usage"'::regclass) AND NOT t.tgisinternal
   AND t.oid NOT IN (SELECT oid FROM after_first);
SELECT count(*) AS replaced_records FROM crm_native.replaced_trigger;

-- the native triggers write into "crm two", not public
INSERT INTO "crm two".companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
INSERT INTO "crm two".customers (id, company_id, customer_email) VALUES
    ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', 'A@B.com');
SELECT key_type, key_value, normalized_value FROM "crm two".customer_matching_keys;
SELECT count(*) AS public_keys FROM public.customer_matching_keys;

-- uninstall restores the application's triggers exactly: definition, enabled
-- state and comment; the native ones are gone
SELECT * FROM crm_native.uninstall('crm two') WHERE table_name = 'customers';
CREATE TEMP TABLE after_uninstall AS
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled,
       obj_description(t.oid, 'pg_trigger') AS comment
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = '"crm two"'::regnamespace AND NOT t.tgisinternal;
SELECT 'lost' AS what, * FROM (TABLE before_install EXCEPT TABLE after_uninstall) d
UNION ALL
SELECT 'extra', * FROM (TABLE after_uninstall EXCEPT TABLE before_install) d;
SELECT count(*) AS before_install_triggers FROM before_install;
SELECT count(*) AS replaced_records FROM crm_native.replaced_trigger;
-- uninstall twice: nothing left to do
SELECT * FROM crm_native.uninstall('crm two') WHERE table_name = 'customers';

-- install and uninstall give the same result whatever the caller's search_path
SET search_path = pg_temp;
SELECT count(*) AS native FROM crm_native.install('crm two') WHERE implementation = 'native' AND table_name = 'customers';
SELECT count(*) AS native FROM crm_native.uninstall('crm two') WHERE implementation = 'native';
RESET search_path;
SELECT count(*) AS differences FROM (
    (SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled, obj_description(t.oid, 'pg_trigger')
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = '"crm two"'::regnamespace AND NOT t.tgisinternal
     EXCEPT TABLE before_install)
    UNION ALL
    (TABLE before_install
     EXCEPT SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled, obj_description(t.oid, 'pg_trigger')
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = '"crm two"'::regnamespace AND NOT t.tgisinternal)) d;

-- install is one transaction: rolled back, nothing happened
BEGIN;
SELECT count(*) > 0 AS installed FROM crm_native.install('crm two') WHERE implementation = 'native';
ROLLBACK;
SELECT * FROM crm_native.status('crm two');
SELECT count(*) AS replaced_records FROM crm_native.replaced_trigger;

-- a failure half-way (a trigger name install() would create is taken by a
-- trigger it does not replace) leaves everything as it was
BEGIN;
INSERT INTO crm_native.native_trigger VALUES
    ('zz_native_probe', 'customers', 'zz_app_probe',
     'CREATE TRIGGER zz_native_probe AFTER INSERT ON %1$s FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log()');
CREATE TRIGGER zz_native_probe AFTER INSERT ON "crm two".customers
    FOR EACH ROW EXECUTE FUNCTION "crm two".legacy_audit();
SAVEPOINT before_install;
SELECT * FROM crm_native.install('crm two');
ROLLBACK TO SAVEPOINT before_install;
SELECT * FROM crm_native.status('crm two') WHERE trigger_name <> 'zz_native_probe';
SELECT count(*) AS replaced_records FROM crm_native.replaced_trigger;
ROLLBACK;

-- validation: one error naming everything missing or mistyped
CREATE SCHEMA broken;
SET search_path = broken, public;
SET client_min_messages = warning;
\set ECHO none
\i :schema_file
\set ECHO all
RESET client_min_messages;
RESET search_path;
DROP TABLE broken.customer_events;
ALTER TABLE broken.customers DROP COLUMN merged_into_customer_id, DROP COLUMN lifecycle_stage_changed_at;
ALTER TABLE broken.customer_audit_log ALTER COLUMN changed_fields TYPE text;
ALTER TABLE broken.customer_matching_keys DROP COLUMN normalized_value;
SELECT * FROM crm_native.install('broken');
SELECT crm_native.missing_objects('broken');
SELECT crm_native.missing_objects('crm two');
-- nothing was changed by the failed call
SELECT count(*) AS native_triggers FROM crm_native.status('broken') WHERE implementation = 'native';
SELECT * FROM crm_native.install('no such schema');
SELECT * FROM crm_native.status('no such schema');

-- A table owner that is not a superuser installs and uninstalls with the
-- privileges docs/install.md lists: USAGE on schema crm_native and EXECUTE
-- on the four registry writers (the registries are readable by every role
-- and written through install() and uninstall() only;
-- sql/registry_security.sql).
CREATE ROLE crm_table_owner;
CREATE SCHEMA owned AUTHORIZATION crm_table_owner;
SET client_min_messages = warning;
SET ROLE crm_table_owner;
SET search_path = owned, public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET ROLE;
RESET search_path;
RESET client_min_messages;
GRANT USAGE ON SCHEMA crm_native TO crm_table_owner;
-- without the registry writers: refused by name, with the GRANT to run
SET ROLE crm_table_owner;
\set SHOW_CONTEXT never
SELECT count(*) FROM crm_native.install('owned');
\set SHOW_CONTEXT errors
RESET ROLE;
GRANT EXECUTE ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                          crm_native._record_installed_schema(text), crm_native._forget_installed_schema(text)
  TO crm_table_owner;
SET ROLE crm_table_owner;
SET client_min_messages = error;
SELECT count(*) FILTER (WHERE implementation = 'native') AS native_triggers FROM crm_native.install('owned');
SELECT count(*) FILTER (WHERE implementation = 'native') AS native_triggers FROM crm_native.uninstall('owned');
RESET client_min_messages;
RESET ROLE;
DROP SCHEMA owned CASCADE;
REVOKE EXECUTE ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                          crm_native._record_installed_schema(text), crm_native._forget_installed_schema(text)
  FROM crm_table_owner;
REVOKE USAGE ON SCHEMA crm_native FROM crm_table_owner;
DROP ROLE crm_table_owner;

-- A schema renamed after install(): its records name the old schema, so
-- uninstall() would drop the native triggers and restore nothing. It
-- refuses instead, and works once the schema has its old name back.
CREATE SCHEMA renamed_a;
SET client_min_messages = warning;
SET search_path = renamed_a, public;
\set ECHO none
\i :schema_file
\set ECHO all
CREATE FUNCTION renamed_a.app_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR UPDATE OR DELETE ON renamed_a.customers
    FOR EACH ROW EXECUTE FUNCTION renamed_a.app_audit();
RESET search_path;
SET client_min_messages = error;
SELECT count(*) FILTER (WHERE implementation = 'native') AS native_triggers FROM crm_native.install('renamed_a');
RESET client_min_messages;
ALTER SCHEMA renamed_a RENAME TO renamed_b;
SELECT * FROM crm_native.uninstall('renamed_b');
SELECT count(*) FILTER (WHERE implementation = 'native') AS still_native FROM crm_native.status('renamed_b');
ALTER SCHEMA renamed_b RENAME TO renamed_a;
SELECT trigger_name, implementation FROM crm_native.uninstall('renamed_a') WHERE table_name = 'customers' ORDER BY 1;
-- A record left by a dropped schema of the same name is not restored: the
-- new schema has no audit trigger, and gets none back from uninstall().
SET client_min_messages = error;
SELECT count(*) > 0 AS installed FROM crm_native.install('renamed_a');
RESET client_min_messages;
DROP SCHEMA renamed_a CASCADE;
CREATE SCHEMA renamed_a;
SET client_min_messages = warning;
SET search_path = renamed_a, public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET search_path;
SET client_min_messages = error;
SELECT count(*) > 0 AS installed FROM crm_native.install('renamed_a');
SELECT count(*) AS stale_records FROM crm_native.replaced_trigger WHERE schema_name = 'renamed_a';
SELECT count(*) AS triggers_left FROM crm_native.uninstall('renamed_a');
RESET client_min_messages;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'renamed_a.customers'::regclass AND NOT tgisinternal ORDER BY 1;
DROP SCHEMA renamed_a CASCADE;

-- On a logical replication subscriber the application's metrics trigger
-- would be ENABLE ALWAYS (or REPLICA); install() copies that state, and
-- warns: the apply worker fires row triggers only, and the native metrics
-- triggers are statement triggers.
CREATE SCHEMA subscriber;
SET client_min_messages = warning;
SET search_path = subscriber, public;
\set ECHO none
\i :schema_file
\set ECHO all
CREATE FUNCTION subscriber.app_metrics() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER trg_vc_usage_metrics_refresh AFTER INSERT OR UPDATE OR DELETE ON subscriber."VC Usage"
    FOR EACH ROW EXECUTE FUNCTION subscriber.app_metrics();
ALTER TABLE subscriber."VC Usage" ENABLE ALWAYS TRIGGER trg_vc_usage_metrics_refresh;
RESET search_path;
SELECT count(*) > 0 AS installed FROM crm_native.install('subscriber');
RESET client_min_messages;
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall('subscriber');
DROP SCHEMA subscriber CASCADE;

-- Every registered trigger reads back from pg_get_triggerdef() as the
-- registry writes it: verify_schema() and install() compare the two to find
-- a native trigger defined otherwise.
-- A varchar lifecycle_stage (pg_get_triggerdef() writes its WHEN with
-- ::text casts) and quote_all_identifiers on do not make a trigger read as
-- different (they did: install() re-created the lifecycle trigger at every
-- call; found by an independent review).
CREATE SCHEMA drift;
SET client_min_messages = warning;
SET search_path = drift, public;
\set ECHO none
\i :schema_file
\set ECHO all
RESET search_path;
ALTER TABLE drift.customers ALTER COLUMN lifecycle_stage TYPE varchar(20);
SELECT count(*) > 0 AS installed FROM crm_native.install('drift');
SELECT nt.trigger_name, crm_native._trigger_as_registered(t.oid, nt, t.tgrelid::regclass, false) AS reads_back
  FROM crm_native.native_trigger nt
  JOIN pg_trigger t ON t.tgname = nt.trigger_name AND t.tgrelid = format('drift.%I', nt.table_name)::regclass
 ORDER BY 1;
CREATE TEMP TABLE drift_oids AS SELECT oid FROM pg_trigger WHERE tgrelid = 'drift.customers'::regclass;
SET quote_all_identifiers = on;
SELECT count(*) AS trigger_problems FROM crm_native.verify_schema('drift') WHERE kind = 'trigger' AND status <> 'ok';
SELECT count(*) > 0 AS installed FROM crm_native.install('drift');
RESET quote_all_identifiers;
SELECT count(*) AS recreated FROM pg_trigger
 WHERE tgrelid = 'drift.customers'::regclass AND oid NOT IN (SELECT oid FROM drift_oids);
-- A database restored from a dump of 0.1.0, whose chat UPDATE trigger did
-- not fire for customer_id and company_id (so a chat could be relinked to
-- another company's customer): verify_schema() said ok and install()
-- changed nothing. Now it reads as different, and install() recreates it
-- (keeping its enabled state) as this version defines it: for every UPDATE
-- (0.8.0; 0.2.0 to 0.7.0 named the five columns).
DROP TRIGGER trg_vc_usage_customer_sync_update ON drift."VC Usage";
CREATE TRIGGER trg_vc_usage_customer_sync_update BEFORE UPDATE OF customer_name, customer_email, customer_phone
    ON drift."VC Usage" FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync();
ALTER TABLE drift."VC Usage" ENABLE ALWAYS TRIGGER trg_vc_usage_customer_sync_update;
RESET client_min_messages;
SELECT object, status, detail FROM crm_native.verify_schema('drift') WHERE kind = 'trigger' AND status <> 'ok';
SELECT count(*) > 0 AS installed FROM crm_native.install('drift');
SELECT count(*) AS trigger_problems FROM crm_native.verify_schema('drift') WHERE kind = 'trigger' AND status <> 'ok';
SELECT tgenabled, pg_get_triggerdef(oid) LIKE '%BEFORE UPDATE ON drift."VC Usage" FOR EACH ROW%' AS every_update
  FROM pg_trigger WHERE tgrelid = 'drift."VC Usage"'::regclass AND tgname = 'trg_vc_usage_customer_sync_update';
INSERT INTO drift.companies (id, name) VALUES ('d1000000-0000-4000-8000-000000000001', 'Drift A'),
                                               ('d2000000-0000-4000-8000-000000000002', 'Drift B');
INSERT INTO drift."VC Usage" (company_id, customer_email) VALUES ('d1000000-0000-4000-8000-000000000001', 'a@drift.example'),
                                                              ('d2000000-0000-4000-8000-000000000002', 'b@drift.example');
\set VERBOSITY sqlstate
UPDATE drift."VC Usage" SET customer_id = (SELECT id FROM drift.customers WHERE customer_email = 'b@drift.example')
 WHERE customer_email = 'a@drift.example';
\set VERBOSITY default
SET client_min_messages = warning;
SELECT count(*) AS uninstall_rows FROM crm_native.uninstall('drift');
DROP SCHEMA drift CASCADE;
RESET client_min_messages;
-- A table renamed after install(): uninstall() refuses, changing nothing
-- (it left the native triggers on the renamed table, and forgot the
-- application triggers recorded for the old name; found by an independent
-- tester). Renamed back, it restores them.
SELECT count(*) > 0 AS installed FROM crm_native.install();
ALTER TABLE "VC Usage" RENAME TO chats_renamed;
\set SHOW_CONTEXT never
SELECT crm_native.uninstall();
\set SHOW_CONTEXT errors
SELECT count(*) AS records_kept FROM crm_native.replaced_trigger WHERE schema_name = 'public' AND table_name = 'VC Usage';
ALTER TABLE chats_renamed RENAME TO "VC Usage";
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall();
SELECT tgname FROM pg_trigger WHERE tgrelid = '"VC Usage"'::regclass AND NOT tgisinternal ORDER BY 1;
-- After DROP EXTENSION ... CASCADE (which drops the records with the
-- native triggers) and install() again, nothing is recorded to put back:
-- uninstall() says that the chats are no longer synced, instead of
-- silently leaving the tables without triggers (found by an independent
-- tester).
SELECT count(*) > 0 AS installed FROM crm_native.install();
SET client_min_messages = warning;
DROP EXTENSION crm_native CASCADE;
RESET client_min_messages;
CREATE EXTENSION crm_native;
SELECT count(*) > 0 AS installed FROM crm_native.install();
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall();
SELECT count(*) AS chat_triggers FROM pg_trigger WHERE tgrelid = '"VC Usage"'::regclass AND NOT tgisinternal;

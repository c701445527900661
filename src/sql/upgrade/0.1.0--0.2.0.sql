-- crm_native 0.1.0 -> 0.2.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.2.0 (UPGRADE_0_2_0_FRAGMENTS) to this file to make
-- crm_native--0.1.0--0.2.0.sql; test/run.d/upgrade.sh proves that an updated
-- 0.1.0 has exactly the objects of a fresh 0.2.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.2.0'" to load this file. \quit

-- 1. The test-only function is no longer in the shipped library.
DROP FUNCTION IF EXISTS crm_native._guard_test(text);

-- 2. crm_native.required_column becomes a view of the column list compiled
--    into the library, the one the triggers themselves check.
DROP TABLE crm_native.required_column;
CREATE FUNCTION crm_native.required_columns()
RETURNS TABLE (ordinal int, table_name text, column_name text, types regtype[])
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_required_columns';

CREATE VIEW crm_native.required_column AS
SELECT ordinal, table_name, column_name, types FROM crm_native.required_columns();

-- 3. The chat UPDATE sync trigger also fires when customer_id or company_id
--    change (a chat must name a live customer of its own company). Re-create
--    it wherever install() attached it, keeping its enabled state and comment.
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_vc_usage_customer_sync_update '
             'BEFORE UPDATE OF customer_name, customer_email, customer_phone, customer_id, company_id ON %1$s '
             'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()'
 WHERE trigger_name = 'trg_vc_usage_customer_sync_update';

DO $upgrade$
DECLARE
    r record;
    ddl text;
BEGIN
    SELECT nt.ddl INTO ddl FROM crm_native.native_trigger nt
     WHERE nt.trigger_name = 'trg_vc_usage_customer_sync_update';
    FOR r IN
        SELECT t.tgrelid::regclass AS rel, t.tgname, t.tgenabled,
               obj_description(t.oid, 'pg_trigger') AS comment
          FROM pg_catalog.pg_trigger t
         WHERE t.tgname = 'trg_vc_usage_customer_sync_update' AND NOT t.tgisinternal
           AND t.tgfoid = 'crm_native.customer_sync()'::regprocedure
           -- not the clones PostgreSQL made on partitions: they cannot be
           -- dropped, and come back with their parent's (fixed after the
           -- 0.2.0 release: the update failed on a partitioned "VC Usage")
           AND t.tgparentid = 0
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
        EXECUTE format(ddl, r.rel);
        IF r.tgenabled <> 'O' THEN
            EXECUTE format('ALTER TABLE %s %s TRIGGER %I', r.rel,
                           CASE r.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                                            ELSE 'ENABLE ALWAYS' END, r.tgname);
        END IF;
        IF r.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', r.tgname, r.rel, r.comment);
        END IF;
    END LOOP;
END
$upgrade$;

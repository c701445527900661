-- Partitions created or attached after install(): the event trigger that
-- gives them the metrics statement triggers (docs/metrics.md, "Partitions").

-- A partition created or attached after install() gets the triggers
-- registered on_partitions as install() gives them: PostgreSQL clones row
-- triggers onto a new partition (the plpgsql metrics trigger was one), but
-- not statement triggers, and without them chats written straight into the
-- new partition would not be counted. Runs at the end of each CREATE TABLE
-- and ALTER TABLE (ATTACH PARTITION names the parent), whoever ran it;
-- finds the table install() attached to among the command's table and its
-- ancestors (none for a table that is not partitioned), so that any other
-- DDL costs one catalog query. A failure is a warning, never the application's DDL
-- failing: verify_schema() and health() keep reporting the missing triggers
-- until install() runs again. crm_native.attach_partition_triggers = off
-- turns it off.
--
-- SECURITY DEFINER (the extension's owner, a superuser): the role that
-- creates or attaches a partition of "VC Usage" owns it and the table, so it
-- could create these triggers itself, except that it may lack USAGE on
-- schema crm_native; and an event trigger that fails as the invoker would
-- fail every CREATE TABLE of such a role. All it does is create the
-- registry's triggers, from catalog state, on partitions of a table that
-- already has them.
CREATE FUNCTION crm_native._partition_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT coalesce(nullif(current_setting('crm_native.attach_partition_triggers', true), '')::boolean, true) THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT DISTINCT n.nspname AS target_schema, nt AS registered, nt.table_name, nt.trigger_name
          FROM pg_event_trigger_ddl_commands() cmd
          CROSS JOIN LATERAL pg_partition_ancestors(cmd.objid) a   -- the table itself too; none for a plain one
          JOIN pg_class c ON c.oid = a.relid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN crm_native.native_trigger nt ON nt.on_partitions AND nt.table_name = c.relname
          JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
                           AND t.tgnargs = 0
          JOIN pg_proc p ON p.oid = t.tgfoid AND p.pronamespace = 'crm_native'::regnamespace
         WHERE cmd.classid = 'pg_class'::regclass
         ORDER BY 1, 3, 4
    LOOP
        BEGIN
            PERFORM crm_native._add_partition_triggers(r.target_schema, r.registered);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'crm_native: could not put trigger "%" on the new partitions of %.%: %',
                          r.trigger_name, quote_ident(r.target_schema), quote_ident(r.table_name), SQLERRM
                USING HINT = format('Until SELECT crm_native.install(%L) runs as their owner, chats written straight '
                                    'into those partitions are not counted in customer_metrics.', r.target_schema);
        END;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER crm_native_partition_triggers ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION crm_native._partition_ddl_end();

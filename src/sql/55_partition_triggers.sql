-- Partitions created or attached after install(): the event trigger that
-- gives them the metrics statement triggers (docs/metrics.md, "Partitions").

-- The tables one DDL command created (CREATE TABLE) or attached as
-- partitions (ALTER TABLE ... ATTACH PARTITION), read from PostgreSQL's
-- record of the command (src/pg/partition_ddl.cpp).
CREATE FUNCTION crm_native._ddl_new_tables(command pg_ddl_command) RETURNS oid[]
    AS 'MODULE_PATHNAME', 'crm_ddl_new_tables' LANGUAGE C STRICT STABLE;
REVOKE ALL ON FUNCTION crm_native._ddl_new_tables(pg_ddl_command) FROM PUBLIC;

-- A partition created or attached after install() gets the triggers
-- registered on_partitions as install() gives them: PostgreSQL clones row
-- triggers onto a new partition (the plpgsql metrics trigger was one), but
-- not statement triggers, and without them chats written straight into the
-- new partition would not be counted. Runs at the end of each CREATE TABLE,
-- ALTER TABLE and CREATE SCHEMA, whoever ran it. A command on a table outside every tree
-- that install() attached to costs one catalog query, which does not name
-- the C function: naming it in a query loads the library when the query
-- starts, even if no row reaches it (35-40 ms added to the first CREATE
-- TEMP TABLE of every connection, found by an independent tester). Otherwise only the tables the command itself created or
-- attached (and their partitions) get what they lack: an ALTER TABLE that
-- disables a trigger, as a pg_dump script runs before it creates the
-- partitions' triggers, adds nothing. A failure is a warning, never the
-- application's DDL failing: verify_schema() and health() keep reporting the
-- missing triggers until install() runs again (a cancel stays a cancel).
-- crm_native.attach_partition_triggers = off turns it off.
--
-- SECURITY DEFINER (the extension's owner, a superuser): the role that
-- creates or attaches a partition owns it and the table it goes under, so
-- it could create these triggers itself, except that it may lack USAGE on
-- schema crm_native; and an event trigger that fails as the invoker would
-- fail every CREATE TABLE of such a role. All it does is create the
-- registry's triggers, from catalog state, on the tables that role just
-- created or attached.
CREATE FUNCTION crm_native._partition_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- read leniently, as PostgreSQL reads a boolean (any prefix of false,
    -- no, off): a malformed value must not fail the application's DDL
    IF lower(btrim(coalesce(current_setting('crm_native.attach_partition_triggers', true), 'on')))
       ~ '^(f(a(l(s(e)?)?)?)?|no?|off?|0)$' THEN
        RETURN;
    END IF;
    IF NOT EXISTS (
        SELECT FROM pg_event_trigger_ddl_commands() cmd
         WHERE cmd.classid = 'pg_class'::regclass
           AND EXISTS (SELECT FROM pg_partition_ancestors(cmd.objid) ca
                         JOIN pg_trigger ct ON ct.tgrelid = ca.relid AND NOT ct.tgisinternal AND ct.tgnargs = 0
                         JOIN pg_proc cp ON cp.oid = ct.tgfoid AND cp.pronamespace = 'crm_native'::regnamespace)) THEN
        RETURN;
    END IF;
    FOR r IN
        WITH cmds AS MATERIALIZED (
            -- commands on a table in a tree install() attached to, by the
            -- catalogs alone
            SELECT cmd.command
              FROM pg_event_trigger_ddl_commands() cmd
             WHERE cmd.classid = 'pg_class'::regclass
               AND EXISTS (SELECT FROM pg_partition_ancestors(cmd.objid) ca
                             JOIN pg_trigger ct ON ct.tgrelid = ca.relid AND NOT ct.tgisinternal AND ct.tgnargs = 0
                             JOIN pg_proc cp ON cp.oid = ct.tgfoid AND cp.pronamespace = 'crm_native'::regnamespace)
        )
        SELECT DISTINCT n.nspname AS target_schema, nt AS registered, nt.table_name, nt.trigger_name,
               new_table.relid::regclass AS new_table
          FROM cmds
          CROSS JOIN LATERAL unnest(crm_native._ddl_new_tables(cmds.command)) AS new_table (relid)
          CROSS JOIN LATERAL pg_partition_ancestors(new_table.relid) a
          JOIN pg_class c ON c.oid = a.relid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN crm_native.native_trigger nt ON nt.on_partitions AND nt.table_name = c.relname
          JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
                           AND t.tgnargs = 0
          JOIN pg_proc p ON p.oid = t.tgfoid AND p.pronamespace = 'crm_native'::regnamespace
         WHERE a.relid <> new_table.relid
         ORDER BY 1, 3, 4, 5
    LOOP
        BEGIN
            PERFORM crm_native._add_partition_triggers(r.target_schema::text, r.registered, r.new_table);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'crm_native: could not put trigger "%" on %, a new partition of %.%: %',
                          r.trigger_name, r.new_table, quote_ident(r.target_schema), quote_ident(r.table_name), SQLERRM
                USING HINT = format('Until SELECT crm_native.install(%L) runs as its owner, chats written straight '
                                    'into it are not counted in customer_metrics.', r.target_schema);
        END;
    END LOOP;
END
$$;

-- CREATE SCHEMA: its CREATE TABLE ... PARTITION OF elements are reported
-- under that tag.
CREATE EVENT TRIGGER crm_native_partition_triggers ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE SCHEMA')
    EXECUTE FUNCTION crm_native._partition_ddl_end();

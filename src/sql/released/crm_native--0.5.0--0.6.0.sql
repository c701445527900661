-- crm_native 0.5.0 -> 0.6.0: generated from src/sql/upgrade/0.5.0--0.6.0.sql and src/sql/*.sql, do not edit
-- crm_native 0.5.0 -> 0.6.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.6.0 and the functions 0.6.0 changed to this
-- file to make crm_native--0.5.0--0.6.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.5.0 has exactly the objects of a fresh 0.6.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.6.0'" to load this file. \quit

-- 0.6.0 gives a partition of "VC Usage" created or attached after install()
-- the metrics triggers at once, from the event trigger of
-- 55_partition_triggers.sql; install() and that event trigger share
-- _add_partition_triggers(). Nothing changes for a schema installed under
-- 0.5.0: its partitions already have the triggers (or verify_schema() lists
-- them, and install() adds them, as before).

-- The metrics trigger functions lose their SET clauses (search_path,
-- enable_seqscan, enable_bitmapscan): those applied to everything the
-- triggers' writes fire, an application's trigger on customer_metrics or a
-- row-level security policy function that relies on the session's
-- search_path. The statements now qualify every name and are planned with
-- the two scan settings off (40_metrics.sql).
ALTER FUNCTION crm_native.metrics_insert() RESET ALL;
ALTER FUNCTION crm_native.metrics_update() RESET ALL;
ALTER FUNCTION crm_native.metrics_delete() RESET ALL;
ALTER FUNCTION crm_native.metrics_truncate() RESET ALL;

-- _partitions() takes the partition to start below (the event trigger's new
-- table, so that it locks no other partition); the two-argument one goes,
-- else a two-argument call would be ambiguous.
DROP FUNCTION crm_native._partitions(text, text);

-- What the triggers expect of the schema is readable by every role: a
-- table owner who is not a superuser calls install() with USAGE on
-- crm_native and the documented grants on replaced_trigger only.
GRANT SELECT ON crm_native.required_column, crm_native.expected_index, crm_native.required_index TO PUBLIC;

-- ---- src/sql/55_partition_triggers.sql
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
-- that install() attached to costs one catalog query (the library is not
-- even loaded). Otherwise only the tables the command itself created or
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
            PERFORM crm_native._add_partition_triggers(r.target_schema, r.registered, r.new_table);
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

-- ---- crm_native.missing_objects() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.missing_objects(target_schema text DEFAULT 'public')
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH tables AS (
        SELECT t.table_name, min(t.ordinal) AS ordinal, c.oid AS relid, c.relkind
        FROM crm_native.required_column t
        LEFT JOIN pg_namespace n ON n.nspname = target_schema
        LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
        GROUP BY t.table_name, c.oid, c.relkind
    ), problems AS (
        SELECT ordinal, format('table %I', table_name) AS problem
        FROM tables WHERE relid IS NULL
        UNION ALL
        SELECT ordinal, format('table %I is not a table (relkind %s)', table_name, relkind)
        FROM tables WHERE relid IS NOT NULL AND relkind NOT IN ('r', 'p')
        UNION ALL
        SELECT r.ordinal,
               CASE WHEN a.attnum IS NULL
                    THEN format('column %I.%I', r.table_name, r.column_name)
                    ELSE format('column %I.%I has type %s, expected %s', r.table_name, r.column_name,
                                format_type(a.atttypid, NULL), r.types[1])
               END
        FROM crm_native.required_column r
        JOIN tables t ON t.table_name = r.table_name AND t.relid IS NOT NULL AND t.relkind IN ('r', 'p')
        LEFT JOIN pg_attribute a ON a.attrelid = t.relid AND a.attname = r.column_name
                                AND a.attnum > 0 AND NOT a.attisdropped
        WHERE a.attnum IS NULL OR NOT (a.atttypid::regtype = ANY (r.types))
        UNION ALL
        -- never NULL: the chat id tells a chat from the others; a customer
        -- belongs to one company (its keys, events and metrics carry it)
        SELECT r.ordinal, format('column %I.%I must be NOT NULL (%s)', r.table_name, r.column_name, why.reason)
        FROM crm_native.required_column r
        JOIN (VALUES ('VC Usage', 'id', 'the chats'' primary key'),
                     ('customers', 'company_id', 'a customer belongs to one company')) AS why (table_name, column_name, reason)
          ON why.table_name = r.table_name AND why.column_name = r.column_name
        JOIN tables t ON t.table_name = r.table_name AND t.relid IS NOT NULL AND t.relkind IN ('r', 'p')
        JOIN pg_attribute a ON a.attrelid = t.relid AND a.attname = r.column_name AND a.attnum > 0 AND NOT a.attisdropped
        WHERE NOT a.attnotnull
    )
    SELECT coalesce(array_agg(problem ORDER BY ordinal, problem), '{}') FROM problems
$$;

-- ---- crm_native._partitions() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._partitions(target_schema text, tbl text, below regclass DEFAULT NULL)
RETURNS SETOF regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF crm_native._citus_distributed(target_schema) THEN
        RETURN;
    END IF;
    -- Foreign tables take no transition-table trigger (and a row written
    -- there is not written here); a partition being detached CONCURRENTLY
    -- is on its way out.
    RETURN QUERY
    SELECT p.relid::regclass
      FROM pg_partition_tree(coalesce(below, to_regclass(format('%I.%I', target_schema, tbl)))) p
      JOIN pg_class c ON c.oid = p.relid
     WHERE (p.level > 0 OR below IS NOT NULL) AND c.relkind IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = p.relid AND i.inhdetachpending)
     ORDER BY p.level, p.relid::regclass::text;
END
$$;

-- ---- crm_native._add_partition_triggers() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._add_partition_triggers(target_schema text, nt crm_native.native_trigger,
                                                   below regclass DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET crm_native.attach_partition_triggers = off  -- its own ALTER TABLEs
AS $$
DECLARE
    home_enabled "char";
    part regclass;
BEGIN
    SELECT t.tgenabled INTO home_enabled
      FROM pg_trigger t
     WHERE t.tgrelid = format('%I.%I', target_schema, nt.table_name)::regclass
       AND t.tgname = nt.trigger_name AND NOT t.tgisinternal;
    FOR part IN SELECT p FROM crm_native._partitions(target_schema, nt.table_name, below) p
    LOOP
        IF crm_native._create_native_trigger(nt, part, true) THEN
            PERFORM crm_native._set_trigger_enabled(part, nt.trigger_name, home_enabled);
        END IF;
    END LOOP;
END
$$;

-- ---- crm_native.install() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.install(target_schema text DEFAULT 'public')
RETURNS TABLE (trigger_name text, table_name text, implementation text, function text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET crm_native.attach_partition_triggers = off  -- it places the triggers itself
AS $$
#variable_conflict use_column
DECLARE
    missing text[];
    citus_missing text;
    citus_fix text;
    r record;
    app record;
    rel regclass;
    registered crm_native.native_trigger;
BEGIN
    PERFORM crm_native._require_schema('crm_native.install', target_schema);
    missing := crm_native.missing_objects(target_schema);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'crm_native.install: schema "%" is missing: %', target_schema,
                        array_to_string(missing, '; ')
            USING ERRCODE = 'undefined_object',
                  HINT = 'crm_native attaches to the CRM schema of its design (tables customers, "VC Usage", '
                         'customer_matching_keys, customer_events, customer_audit_log, customer_metrics); '
                         'SELECT * FROM crm_native.required_column lists what it needs.';
    END IF;
    -- distributed with Citus: what the shard-local triggers need (90_citus.sql)
    SELECT string_agg(cp.problem, '; '), string_agg(cp.fix, ' ')
      INTO citus_missing, citus_fix
      FROM crm_native.citus_problems(target_schema) cp;
    IF citus_missing IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native.install: schema "%" is distributed with Citus, but %', target_schema, citus_missing
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Fix: ' || citus_fix || ' (docs/citus.md)';
    END IF;
    PERFORM crm_native._warn_missing_dependencies(target_schema);  -- indexes the triggers rely on (80_observe.sql)
    PERFORM crm_native._lock_trigger_tables(target_schema);

    -- 1. Record and drop the application triggers the registry replaces,
    --    found by trigger name (whatever their functions are called).
    FOR r IN
        SELECT DISTINCT nt.table_name AS tbl, nt.replaces FROM crm_native.native_trigger nt ORDER BY 1, 2
    LOOP
        rel := format('%I.%I', target_schema, r.tbl)::regclass;
        SELECT t.oid, t.tgenabled, p.oid::regprocedure::text AS fn, pn.nspname AS fn_schema
          INTO app
          FROM pg_trigger t
          JOIN pg_proc p ON p.oid = t.tgfoid
          JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE t.tgrelid = rel AND t.tgname = r.replaces AND NOT t.tgisinternal;
        IF NOT FOUND OR app.fn_schema = 'crm_native' THEN
            -- Nothing to replace, or already replaced. With neither the
            -- application's trigger nor a native one replacing it here, a
            -- record of it is stale (left by an earlier schema of this name,
            -- dropped): uninstall() must not restore it.
            IF NOT FOUND AND NOT EXISTS (
                   SELECT FROM crm_native.native_trigger nt
                     JOIN pg_trigger t ON t.tgrelid = rel AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
                     JOIN pg_proc p ON p.oid = t.tgfoid
                    WHERE nt.replaces = r.replaces AND nt.table_name = r.tbl
                      AND p.pronamespace = 'crm_native'::regnamespace) THEN
                DELETE FROM crm_native.replaced_trigger rt
                 WHERE rt.schema_name = target_schema AND rt.table_name = r.tbl AND rt.trigger_name = r.replaces;
            END IF;
            CONTINUE;
        END IF;
        INSERT INTO crm_native.replaced_trigger
               (schema_name, table_name, trigger_name, definition, enabled, comment, function_name)
        VALUES (target_schema, r.tbl, r.replaces, pg_get_triggerdef(app.oid), app.tgenabled,
                obj_description(app.oid, 'pg_trigger'), app.fn)
        ON CONFLICT (schema_name, table_name, trigger_name) DO UPDATE
            SET definition = excluded.definition, enabled = excluded.enabled, comment = excluded.comment,
                function_name = excluded.function_name, replaced_at = excluded.replaced_at;
        EXECUTE format('DROP TRIGGER %I ON %s', r.replaces, rel);
    END LOOP;

    -- 2. Create the native triggers that are not there yet. A native trigger
    --    takes over the enabled state of the trigger it replaces; on a
    --    partition, the state of the native trigger on its table.
    FOR registered IN
        SELECT nt.* FROM crm_native.native_trigger nt ORDER BY nt.table_name, nt.trigger_name
    LOOP
        rel := format('%I.%I', target_schema, registered.table_name)::regclass;
        IF crm_native._create_native_trigger(registered, rel, false) THEN
            PERFORM crm_native._set_trigger_enabled(rel, registered.trigger_name, rt.enabled)
               FROM crm_native.replaced_trigger rt
              WHERE rt.schema_name = target_schema AND rt.table_name = registered.table_name AND rt.trigger_name = registered.replaces;
        END IF;
        IF registered.on_partitions THEN
            PERFORM crm_native._add_partition_triggers(target_schema, registered);
        END IF;
    END LOOP;

    -- 2b. A native statement-level trigger set to fire on a logical
    --     replication subscriber (ENABLE ALWAYS or REPLICA, copied from the
    --     application's row-level trigger): the apply worker fires row
    --     triggers only, so customer_metrics would not be maintained there.
    FOR r IN
        SELECT t.tgname, t.tgrelid::regclass AS rel, t.tgenabled
          FROM pg_trigger t
          JOIN pg_proc p ON p.oid = t.tgfoid
          JOIN pg_class c ON c.oid = t.tgrelid
         WHERE p.pronamespace = 'crm_native'::regnamespace AND NOT t.tgisinternal
           AND t.tgtype::int & 1 = 0  -- FOR EACH STATEMENT
           AND t.tgtype::int & 32 = 0  -- not TRUNCATE (the apply worker fires those)
           AND t.tgenabled IN ('A', 'R')
           AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
         ORDER BY 2::text, 1
    LOOP
        RAISE WARNING 'crm_native.install: trigger "%" on % is ENABLE %, but logical replication applies changes without firing statement triggers',
                      r.tgname, r.rel, CASE r.tgenabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END
            USING DETAIL = 'On a subscriber, replicated chats are linked by the row triggers, but customer_metrics is not maintained.',
                  HINT = 'Replicate customer_metrics from the publisher instead, or run crm_native.rebuild_metrics() on the subscriber (docs/metrics.md, "Logical replication").';
    END LOOP;

    -- 3. A trigger under another name that still calls one of the application's
    --    known trigger functions would now run next to its native replacement.
    FOR r IN
        SELECT t.tgname, c.relname, p.oid::regprocedure::text AS fn
          FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
           AND c.relname IN (SELECT nt.table_name FROM crm_native.native_trigger nt)
           AND NOT t.tgisinternal
           -- only functions whose job a registered native trigger now does
           AND p.proname IN (SELECT known.proname
                               FROM (VALUES ('sync_customer_from_vc_usage', 'trg_vc_usage_customer_sync_insert'),
                                            ('sync_customer_from_vc_usage', 'trg_vc_usage_customer_sync_update'),
                                            ('sync_customer_matching_keys', 'trg_customers_matching_keys_sync'),
                                            ('trigger_refresh_customer_metrics', 'trg_vc_usage_metrics_refresh'),
                                            ('log_customer_changes', 'trg_customers_audit_log'),
                                            ('track_lifecycle_changes', 'trg_customers_lifecycle_tracking'))
                                    AS known (proname, app_trigger)
                               JOIN crm_native.native_trigger nt ON nt.replaces = known.app_trigger)
    LOOP
        RAISE WARNING 'crm_native.install: trigger "%" on %.% still calls %, which a native trigger now replaces',
                      r.tgname, quote_ident(target_schema), quote_ident(r.relname), r.fn
            USING HINT = 'install() replaces application triggers by name (crm_native.native_trigger.replaces); '
                         'drop this one if it duplicates a native trigger.';
    END LOOP;

    RETURN QUERY SELECT * FROM crm_native.status(target_schema);
END
$$;

-- ---- crm_native.uninstall() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.uninstall(target_schema text DEFAULT 'public')
RETURNS TABLE (trigger_name text, table_name text, implementation text, function text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET crm_native.attach_partition_triggers = off  -- it places the triggers itself
AS $$
#variable_conflict use_column
DECLARE
    r record;
    rel regclass;
    current_def text;
    orphaned text;
BEGIN
    PERFORM crm_native._require_schema('crm_native.uninstall', target_schema);
    -- The records name their schema. A schema renamed after install() has
    -- none under its new name, and uninstall() would drop the native
    -- triggers and restore nothing; refuse while records name a schema that
    -- no longer exists (renamed, or dropped) and none name this one.
    SELECT string_agg(DISTINCT quote_ident(rt.schema_name), ', ') INTO orphaned
      FROM crm_native.replaced_trigger rt
     WHERE to_regnamespace(quote_ident(rt.schema_name)) IS NULL;
    IF orphaned IS NOT NULL
       AND NOT EXISTS (SELECT FROM crm_native.replaced_trigger rt WHERE rt.schema_name = target_schema)
       AND EXISTS (SELECT FROM crm_native.status(target_schema) st WHERE st.implementation = 'native') THEN
        RAISE EXCEPTION 'crm_native.uninstall: no application trigger of schema % is recorded, but triggers are recorded for schema % which no longer exists',
                        quote_ident(target_schema), orphaned
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'uninstall() restores the triggers install() recorded under the schema''s name; renamed after install(), the schema has none under its new name. Nothing was changed.',
                  HINT = 'Rename the schema back, call uninstall(), and rename it again. If that schema is gone for good, DELETE FROM crm_native.replaced_trigger WHERE schema_name = ... first.';
    END IF;
    -- On Citus a shard move copies the shell table's triggers onto the moved
    -- shard, the statement-level TRUNCATE trigger too, which Citus otherwise
    -- keeps off the shards and so never drops there. Drop those leftovers on
    -- every worker first: run_command_on_workers works in its own
    -- transactions, which would wait for the locks this one takes below
    -- (lock_timeout: never a hang; a failure is a warning with the fix).
    IF crm_native._citus_distributed(target_schema) THEN
        FOR r IN
            SELECT w.nodename, w.nodeport, w.success, w.result FROM run_command_on_workers(
                'DO $do$ DECLARE r record; BEGIN '
                'SET LOCAL lock_timeout = ''10s''; '
                'SET LOCAL citus.override_table_visibility = off; '
                'SET LOCAL citus.enable_manual_changes_to_shards = on; '
                'FOR r IN SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_trigger t '
                '           JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_class c ON c.oid = t.tgrelid '
                '          WHERE p.pronamespace = ''crm_native''::regnamespace AND NOT t.tgisinternal '
                '            AND t.tgtype::int & 32 <> 0 '  -- TRUNCATE
                '            AND NOT EXISTS (SELECT FROM pg_dist_partition d WHERE d.logicalrelid = c.oid) '  -- a shard
                '            AND c.relnamespace = ' || quote_literal(quote_ident(target_schema)) || '::regnamespace LOOP '
                '  EXECUTE format(''DROP TRIGGER %I ON %s'', r.tgname, r.rel); '
                'END LOOP; END $do$') w
        LOOP
            IF NOT r.success THEN
                RAISE WARNING 'crm_native.uninstall: could not drop the TRUNCATE triggers a shard move left on worker %:%: %',
                              r.nodename, r.nodeport, r.result
                    USING HINT = 'docs/citus.md, "Shard moves", has the command that drops them.';
            END IF;
        END LOOP;
    END IF;
    PERFORM crm_native._lock_trigger_tables(target_schema);

    -- 1. Drop the registered native triggers (only those calling crm_native),
    --    on partitions too.
    FOR r IN
        SELECT nt.table_name AS tbl, nt.trigger_name AS trg, t.tgrelid
          FROM crm_native.native_trigger nt
          JOIN pg_class c ON c.relname = nt.table_name AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
          CROSS JOIN LATERAL (SELECT c.oid::regclass AS rel
                              UNION ALL
                              SELECT p FROM crm_native._partitions(target_schema, nt.table_name) p
                               WHERE nt.on_partitions) target
          JOIN pg_trigger t ON t.tgrelid = target.rel AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
          JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE p.pronamespace = 'crm_native'::regnamespace
         ORDER BY 1, 2, t.tgrelid = c.oid, 3
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.trg, r.tgrelid::regclass);
    END LOOP;
    -- 1b. Partition triggers DETACH left behind, in any schema.
    FOR r IN
        SELECT l.trigger_name AS tgname, l.rel FROM crm_native._left_partition_triggers() l
    LOOP
        BEGIN
            EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'crm_native.uninstall: cannot drop trigger "%" on %, left there by DETACH PARTITION: %',
                          r.tgname, r.rel, SQLERRM
                USING HINT = 'It does nothing there; its owner can drop it.';
        END;
    END LOOP;

    -- 2. Put back what install() replaced, exactly as it was.
    FOR r IN
        SELECT rt.* FROM crm_native.replaced_trigger rt
         WHERE rt.schema_name = target_schema ORDER BY rt.table_name, rt.trigger_name
    LOOP
        rel := to_regclass(format('%I.%I', target_schema, r.table_name));
        IF rel IS NULL THEN
            RAISE WARNING 'crm_native.uninstall: table %.% is gone; its trigger "%" is not restored',
                          quote_ident(target_schema), quote_ident(r.table_name), r.trigger_name
                USING DETAIL = format('The recorded definition was: %s', r.definition);
        ELSE
            SELECT pg_get_triggerdef(t.oid) INTO current_def
              FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgname = r.trigger_name AND NOT t.tgisinternal;
            IF FOUND AND current_def IS DISTINCT FROM r.definition THEN
                RAISE EXCEPTION 'crm_native.uninstall: cannot restore trigger "%" on %: a different trigger of that name exists',
                                r.trigger_name, rel
                    USING ERRCODE = 'duplicate_object',
                          DETAIL = format('Existing: %s; recorded: %s', current_def, r.definition);
            ELSIF NOT FOUND THEN
                EXECUTE r.definition;
                PERFORM crm_native._set_trigger_enabled(rel, r.trigger_name, r.enabled);
                IF r.comment IS NOT NULL THEN
                    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', r.trigger_name, rel, r.comment);
                END IF;
            END IF;
        END IF;
        DELETE FROM crm_native.replaced_trigger rt
         WHERE rt.schema_name = r.schema_name AND rt.table_name = r.table_name AND rt.trigger_name = r.trigger_name;
    END LOOP;

    RETURN QUERY SELECT * FROM crm_native.status(target_schema);
END
$$;

-- ---- crm_native.search_customers() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.search_customers(company_id uuid, query text, max_results int DEFAULT 20,
                                            target_schema text DEFAULT 'public')
RETURNS TABLE (customer_id uuid, customer_name text, customer_email text, customer_phone text,
               matched_by text, score real)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.search_customers';
    q text := btrim(query, E' \t\r\n\f\x0B');  -- \x0B: vertical tab (E'\v' is the letter v)
    trgm text;
    k record;
    company_known boolean;
BEGIN
    IF search_customers.company_id IS NULL THEN
        RAISE EXCEPTION '%: company_id must not be NULL', fn USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF q IS NULL OR q = '' THEN
        RAISE EXCEPTION '%: the query is empty', fn USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_results IS NULL OR max_results < 1 THEN
        RAISE EXCEPTION '%: max_results must be at least 1 (got %)', fn, coalesce(max_results::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM crm_native._require_schema(fn, target_schema);
    IF to_regclass(format('%I.companies', target_schema)) IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM %I.companies c WHERE c.id = $1)', target_schema)
           INTO company_known USING search_customers.company_id;
        IF NOT company_known THEN
            RAISE EXCEPTION '%: company % does not exist or is not visible to role %', fn,
                            search_customers.company_id, current_user
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    SELECT n.nspname INTO trgm
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_trgm';
    IF trgm IS NULL THEN
        RAISE EXCEPTION '%: extension pg_trgm is not installed', fn USING ERRCODE = 'undefined_object';
    END IF;

    SELECT * INTO k FROM crm_native._search_keys(q);
    RETURN QUERY EXECUTE crm_native._search_query(target_schema, trgm)
    USING search_customers.company_id, q, max_results, k.email_key, k.phone_key, k.name_key, target_schema,
          k.try_names;
END
$$;

-- ---- crm_native.merge_customers() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.merge_customers(source uuid, target uuid, target_schema text DEFAULT 'public')
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.merge_customers';
    blank constant text := E' \t\r\n\f\x0B';  -- \x0B: vertical tab (E'\v' is the letter v)
    lock_sql text;
    s record;
    t record;
    author uuid;
    filled text[] := '{}';
    set_list text;
    chats_moved bigint := 0;
    summaries_moved bigint := 0;
    keys_moved bigint;
    keys_dropped bigint;
    log_id uuid;
    s_company uuid;
    company uuid;
BEGIN
    IF source IS NULL OR target IS NULL THEN
        RAISE EXCEPTION '%: source and target must not be NULL', fn USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF source = target THEN
        RAISE EXCEPTION '%: cannot merge customer % into itself', fn, source
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM crm_native._require_schema(fn, target_schema);
    IF to_regclass(format('%I.customer_merge_log', target_schema)) IS NULL THEN
        RAISE EXCEPTION '%: schema "%" has no table customer_merge_log', fn, target_schema
            USING ERRCODE = 'undefined_table';
    END IF;
    PERFORM crm_native._ops_require_native(fn, target_schema);
    -- Under REPEATABLE READ the snapshot predates the row locks below: a chat
    -- linked to the source by a transaction that committed in between would
    -- be invisible to the move and stay on the merged customer.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '%: needs a READ COMMITTED transaction (this one is %)', fn,
                        current_setting('transaction_isolation')
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'A merge must see the chats that concurrent transactions linked to the source until it locked it.';
    END IF;
    -- the audit trigger's rule: a value that is not a uuid fails (22P02)
    author := NULLIF(current_setting('app.current_user_id', true), '')::uuid;

    -- The company first (unlocked): every statement below names it, which
    -- keeps each one within the company (on Citus: on one shard).
    EXECUTE format('SELECT c.company_id FROM %I.customers c WHERE c.id = $1', target_schema) INTO company USING target;
    EXECUTE format('SELECT c.company_id FROM %I.customers c WHERE c.id = $1', target_schema) INTO s_company USING source;
    IF s_company IS NOT NULL AND company IS NOT NULL AND s_company <> company THEN
        RAISE EXCEPTION '%: customers % and % belong to different companies', fn, source, target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    company := coalesce(company, s_company);  -- one of them missing: reported below
    -- Lock both customers, lower id first (two merges of the same pair never
    -- deadlock), with the lock the sync takes on the customer it links to:
    -- a chat being linked to either one finishes first, a later one waits
    -- for the merge and then finds the survivor.
    lock_sql := format('SELECT c.id, c.company_id, c.deleted_at, c.merged_into_customer_id, to_jsonb(c) AS data
                          FROM %I.customers c WHERE c.id = $1 AND c.company_id = $2 FOR NO KEY UPDATE OF c',
                       target_schema);
    IF source < target THEN
        EXECUTE lock_sql INTO s USING source, company;
        EXECUTE lock_sql INTO t USING target, company;
    ELSE
        EXECUTE lock_sql INTO t USING target, company;
        EXECUTE lock_sql INTO s USING source, company;
    END IF;
    IF s.id IS NULL OR t.id IS NULL THEN
        RAISE EXCEPTION '%: customer % does not exist or is not visible to role %', fn,
                        CASE WHEN s.id IS NULL THEN source ELSE target END, current_user
            USING ERRCODE = 'no_data_found';
    END IF;
    IF s.company_id IS DISTINCT FROM t.company_id THEN
        RAISE EXCEPTION '%: customers % and % belong to different companies', fn, source, target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.deleted_at IS NOT NULL OR t.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION '%: customer % is soft-deleted', fn,
                        CASE WHEN s.deleted_at IS NOT NULL THEN source ELSE target END
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF s.merged_into_customer_id IS NOT NULL OR t.merged_into_customer_id IS NOT NULL THEN
        RAISE EXCEPTION '%: customer % is already merged into %', fn,
                        CASE WHEN s.merged_into_customer_id IS NOT NULL THEN source ELSE target END,
                        coalesce(s.merged_into_customer_id, t.merged_into_customer_id)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Merge into the surviving customer instead.';
    END IF;

    -- 1. The chats: an UPDATE of customer_id (checked by the sync trigger,
    --    counted by the metrics trigger: the source's metrics row goes, the
    --    target's becomes the recomputation over both histories).
    EXECUTE format('UPDATE %I.%I SET customer_id = $2 WHERE customer_id = $1 AND company_id = $3',
                   target_schema, 'VC Usage')
      USING source, target, company;
    GET DIAGNOSTICS chats_moved = ROW_COUNT;
    IF to_regclass(format('%I.customer_conversation_summaries', target_schema)) IS NOT NULL THEN
        EXECUTE format('UPDATE %I.customer_conversation_summaries SET customer_id = $2
                         WHERE customer_id = $1 AND company_id = $3', target_schema) USING source, target, company;
        GET DIAGNOSTICS summaries_moved = ROW_COUNT;
    END IF;

    -- 2. The target's missing (NULL or blank) contact data, from the source;
    --    email, phone and name only when they normalize to a key (the sync's
    --    rule). Never overwrites. updated_at is set either way.
    IF NULLIF(btrim(t.data->>'customer_name', blank), '') IS NULL
       AND crm_native.normalize_name(s.data->>'customer_name') IS NOT NULL THEN
        filled := filled || 'customer_name'::text;
    END IF;
    IF NULLIF(btrim(t.data->>'customer_email', blank), '') IS NULL
       AND crm_native.normalize_email(s.data->>'customer_email') IS NOT NULL THEN
        filled := filled || 'customer_email'::text;
    END IF;
    IF NULLIF(btrim(t.data->>'customer_phone', blank), '') IS NULL
       AND crm_native.normalize_phone(s.data->>'customer_phone') IS NOT NULL THEN
        filled := filled || 'customer_phone'::text;
    END IF;
    IF (t.data ? 'customer_address') AND NULLIF(btrim(t.data->>'customer_address', blank), '') IS NULL
       AND NULLIF(btrim(s.data->>'customer_address', blank), '') IS NOT NULL THEN
        filled := filled || 'customer_address'::text;
    END IF;
    SELECT string_agg(format('%1$I = s.%1$I', col), ', ') INTO set_list FROM unnest(filled) AS col;
    EXECUTE format('UPDATE %1$I.customers t SET %2$s updated_at = now()
                      FROM %1$I.customers s
                     WHERE t.id = $2 AND s.id = $1 AND t.company_id = $3 AND s.company_id = $3',
                   target_schema, coalesce(set_list || ',', ''))
      USING source, target, company;

    -- 3. Matching keys: the source's keys the target does not hold move to
    --    it (so a chat with the source's email or phone finds the target);
    --    the rest (duplicates) go.
    EXECUTE format('UPDATE %1$I.customer_matching_keys k SET customer_id = $2
                     WHERE k.customer_id = $1 AND k.company_id = $3
                       AND NOT EXISTS (SELECT FROM %1$I.customer_matching_keys d
                                        WHERE d.customer_id = $2 AND d.company_id = $3 AND d.key_type = k.key_type
                                          AND d.normalized_value = k.normalized_value)', target_schema)
      USING source, target, company;
    GET DIAGNOSTICS keys_moved = ROW_COUNT;
    EXECUTE format('DELETE FROM %I.customer_matching_keys WHERE customer_id = $1 AND company_id = $2', target_schema)
      USING source, company;
    GET DIAGNOSTICS keys_dropped = ROW_COUNT;

    -- 4. The merge log, and an event on each customer.
    EXECUTE format('INSERT INTO %I.customer_merge_log
                        (company_id, source_customer_id, target_customer_id, merged_by_user_id, merge_reason, merged_data)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING id', target_schema)
       INTO log_id
      USING t.company_id, source, target, author, 'crm_native.merge_customers',
            jsonb_build_object('source', s.data, 'target_before', t.data, 'filled_fields', to_jsonb(filled),
                               'chats_moved', chats_moved, 'summaries_moved', summaries_moved,
                               'keys_moved', keys_moved, 'keys_dropped', keys_dropped);
    EXECUTE format('INSERT INTO %I.customer_events (customer_id, company_id, event_type, event_data)
                    VALUES ($1, $3, ''merged_from'', $4), ($2, $3, ''merged_into'', $5)', target_schema)
      USING target, source, t.company_id,
            jsonb_build_object('source_customer_id', source, 'merge_log_id', log_id, 'chats_moved', chats_moved,
                               'filled_fields', to_jsonb(filled)),
            jsonb_build_object('target_customer_id', target, 'merge_log_id', log_id);

    -- 5. The source: merged into the target and soft-deleted (audit row by
    --    the customers trigger).
    EXECUTE format('UPDATE %I.customers SET merged_into_customer_id = $2, deleted_at = now(), updated_at = now()
                     WHERE id = $1 AND company_id = $3', target_schema)
      USING source, target, company;
    RETURN target;
END
$$;

-- crm_native 0.4.0 -> 0.5.0: generated from src/sql/upgrade/0.4.0--0.5.0.sql and src/sql/*.sql, do not edit
-- crm_native 0.4.0 -> 0.5.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.5.0 and the functions 0.5.0 changed to this
-- file to make crm_native--0.4.0--0.5.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.4.0 has exactly the objects of a fresh 0.5.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.5.0'" to load this file. \quit

-- 0.5.0 attaches the metrics INSERT, UPDATE and DELETE triggers to each
-- partition of a partitioned "VC Usage" as well (40_metrics.sql): a
-- statement fires the statement triggers of the table it names only. The
-- registry says which triggers go on partitions, and their DDL takes the
-- function's arguments as %2$s. A schema installed under 0.4.0 gets the
-- partition triggers from the next install() call (verify_schema() lists
-- the ones missing).
ALTER TABLE crm_native.native_trigger ADD COLUMN on_partitions boolean NOT NULL DEFAULT false;
UPDATE crm_native.native_trigger
   SET ddl = replace(ddl, 'EXECUTE FUNCTION crm_native.' || f || '()', 'EXECUTE FUNCTION crm_native.' || f || '(%2$s)'),
       on_partitions = true
  FROM (VALUES ('trg_vc_usage_metrics_refresh_ins', 'metrics_insert'),
               ('trg_vc_usage_metrics_refresh_upd', 'metrics_update'),
               ('trg_vc_usage_metrics_refresh_del', 'metrics_delete')) AS m (trigger_name, f)
 WHERE native_trigger.trigger_name = m.trigger_name;

-- The enabled-state helper takes the table (a partition may be in any schema).
DROP FUNCTION crm_native._set_trigger_enabled(text, text, text, "char");

-- The chat id may be any of the usual key types (bigint, integer, uuid,
-- text, varchar; NOT NULL): relink_chats carries the last id it looked at
-- as text.
ALTER TYPE crm_native.relink_progress ALTER ATTRIBUTE last_id TYPE text;

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
        -- the chat id tells a chat from the others: never NULL
        SELECT r.ordinal, format('column %I.%I must be NOT NULL (the chats'' primary key)', r.table_name, r.column_name)
        FROM crm_native.required_column r
        JOIN tables t ON t.table_name = r.table_name AND t.relid IS NOT NULL AND t.relkind IN ('r', 'p')
        JOIN pg_attribute a ON a.attrelid = t.relid AND a.attname = r.column_name AND a.attnum > 0 AND NOT a.attisdropped
        WHERE r.table_name = 'VC Usage' AND r.column_name = 'id' AND NOT a.attnotnull
    )
    SELECT coalesce(array_agg(problem ORDER BY ordinal, problem), '{}') FROM problems
$$;

-- ---- crm_native._set_trigger_enabled() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._set_trigger_enabled(rel regclass, trg text, enabled "char")
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF enabled IS NULL OR enabled = 'O' THEN
        RETURN;  -- the default state of a new trigger
    END IF;
    EXECUTE format('ALTER TABLE %s %s TRIGGER %I', rel,
                   CASE enabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                                WHEN 'A' THEN 'ENABLE ALWAYS' END, trg);
END
$$;

-- ---- crm_native._partitions() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._partitions(target_schema text, tbl text)
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
      FROM pg_partition_tree(to_regclass(format('%I.%I', target_schema, tbl))) p
      JOIN pg_class c ON c.oid = p.relid
     WHERE p.level > 0 AND c.relkind IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = p.relid AND i.inhdetachpending)
     ORDER BY p.level, p.relid::regclass::text;
END
$$;

-- ---- crm_native._trigger_args_are() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._trigger_args_are(nargs int2, args bytea, on_partition boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN on_partition THEN nargs = 1 AND args = decode('706172746974696f6e00', 'hex')  -- 'partition\0'
                ELSE nargs = 0 END
$$;

-- ---- crm_native._left_partition_triggers() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._left_partition_triggers()
RETURNS TABLE (trigger_name name, rel regclass)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tgname, t.tgrelid::regclass
      FROM pg_trigger t
      JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE p.pronamespace = 'crm_native'::regnamespace AND NOT t.tgisinternal
       AND crm_native._trigger_args_are(t.tgnargs, t.tgargs, true)
       AND NOT EXISTS (SELECT FROM pg_partition_ancestors(t.tgrelid) a
                         JOIN pg_trigger h ON h.tgrelid = a.relid
                        WHERE a.relid <> t.tgrelid AND h.tgfoid = t.tgfoid AND h.tgnargs = 0)
     ORDER BY 2::text, 1
$$;

-- ---- crm_native._create_native_trigger() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._create_native_trigger(nt crm_native.native_trigger, rel regclass, on_partition boolean)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    existing record;
    again boolean;
BEGIN
    SELECT pn.nspname AS fn_schema, p.oid::regprocedure::text AS fn, t.tgenabled,
           crm_native._trigger_args_are(t.tgnargs, t.tgargs, on_partition) AS args_ok
      INTO existing
      FROM pg_trigger t
      JOIN pg_proc p ON p.oid = t.tgfoid
      JOIN pg_namespace pn ON pn.oid = p.pronamespace
     WHERE t.tgrelid = rel AND t.tgname = nt.trigger_name AND NOT t.tgisinternal;
    again := FOUND;
    IF again THEN
        IF existing.fn_schema <> 'crm_native' THEN
            RAISE EXCEPTION 'crm_native.install: table % already has a trigger "%" (calling %) that crm_native does not replace',
                            rel, nt.trigger_name, existing.fn
                USING ERRCODE = 'duplicate_object',
                      HINT = 'Rename or drop that trigger, then call install() again.';
        END IF;
        IF existing.args_ok THEN
            RETURN false;  -- installed already
        END IF;
        EXECUTE format('DROP TRIGGER %I ON %s', nt.trigger_name, rel);
    END IF;
    EXECUTE format(nt.ddl, rel, CASE WHEN on_partition THEN quote_literal('partition') ELSE '' END);
    IF again THEN
        PERFORM crm_native._set_trigger_enabled(rel, nt.trigger_name, existing.tgenabled);
    END IF;
    RETURN NOT again;
END
$$;

-- ---- crm_native.install() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.install(target_schema text DEFAULT 'public')
RETURNS TABLE (trigger_name text, table_name text, implementation text, function text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
    part regclass;
    home_enabled "char";
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
            CONTINUE;  -- nothing to replace, or already replaced
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
        CONTINUE WHEN NOT registered.on_partitions;
        SELECT t.tgenabled INTO home_enabled
          FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgname = registered.trigger_name AND NOT t.tgisinternal;
        FOR part IN SELECT p FROM crm_native._partitions(target_schema, registered.table_name) p
        LOOP
            IF crm_native._create_native_trigger(registered, part, true) THEN
                PERFORM crm_native._set_trigger_enabled(part, registered.trigger_name, home_enabled);
            END IF;
        END LOOP;
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
AS $$
#variable_conflict use_column
DECLARE
    r record;
    rel regclass;
    current_def text;
BEGIN
    PERFORM crm_native._require_schema('crm_native.uninstall', target_schema);
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

-- ---- crm_native.verify_schema() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.verify_schema(target_schema text DEFAULT 'public')
RETURNS TABLE (object text, kind text, status text, detail text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    nsp oid;
    qs text := quote_ident(target_schema);
    distributed boolean;
BEGIN
    PERFORM crm_native._require_schema('crm_native.verify_schema', target_schema);
    SELECT oid INTO nsp FROM pg_namespace WHERE nspname = target_schema;
    distributed := crm_native._citus_distributed(target_schema);

    -- 1. The seed's index inventory, matched by definition.
    RETURN QUERY
    WITH idx AS (SELECT * FROM crm_native._schema_indexes(target_schema)),
    expected AS (
        SELECT e.*, to_regclass(format('%I.%I', target_schema, e.table_name)) AS relid
          FROM crm_native.expected_index e),
    judged AS (
        SELECT e.*, same.index_name AS same_name, same.is_valid AS same_valid,
               named.index_name AS named_name, named.signature AS named_signature, named.is_unique AS named_unique
          FROM expected e
          LEFT JOIN LATERAL (
                SELECT x.index_name, x.is_valid FROM idx x
                 WHERE x.relid = e.relid AND (NOT e.is_unique OR x.is_unique)
                   AND (x.signature = e.signature
                        -- on Citus a unique key carries company_id last
                        OR (distributed AND e.is_unique
                            AND x.signature = regexp_replace(e.signature, '\)$', ', company_id)')))
                 ORDER BY x.is_valid DESC, x.index_name = e.index_name DESC, x.index_name LIMIT 1) same ON true
          LEFT JOIN LATERAL (
                SELECT x.index_name, x.signature, x.is_unique FROM idx x
                 WHERE x.relid = e.relid AND x.index_name = e.index_name) named ON true)
    SELECT format('%I.%I', j.table_name, j.index_name),
           'index',
           CASE WHEN j.relid IS NULL THEN 'missing'
                WHEN j.same_name IS NOT NULL AND j.same_valid THEN 'ok'
                WHEN j.same_name IS NOT NULL THEN 'disabled'
                WHEN j.named_name IS NOT NULL THEN 'different'
                ELSE 'missing' END,
           CASE WHEN j.relid IS NULL THEN format('table %I.%I does not exist', target_schema, j.table_name)
                WHEN j.same_name IS NOT NULL AND NOT j.same_valid
                    THEN format('%s is invalid (a failed CREATE INDEX CONCURRENTLY?): the planner does not use it', j.same_name)
                WHEN j.same_name = j.index_name THEN j.signature
                WHEN j.same_name IS NOT NULL
                    THEN format('%s (as %I)', j.signature, j.same_name)
                WHEN j.named_name IS NOT NULL
                    THEN format('expected %s%s; %I is %s%s', CASE WHEN j.is_unique THEN 'UNIQUE ' ELSE '' END, j.signature,
                                j.index_name, CASE WHEN j.named_unique THEN 'UNIQUE ' ELSE '' END, j.named_signature)
                ELSE format('no index %s%s on %I', CASE WHEN j.is_unique THEN 'UNIQUE ' ELSE '' END, j.signature, j.table_name) END,
           CASE WHEN j.relid IS NULL THEN NULL
                WHEN j.same_name IS NOT NULL AND j.same_valid THEN NULL
                WHEN j.same_name IS NOT NULL
                    THEN format('REINDEX INDEX CONCURRENTLY %s.%I', qs, j.same_name)
                WHEN j.is_primary AND NOT EXISTS (SELECT FROM idx x WHERE x.relid = j.relid AND x.is_primary)
                    THEN format('ALTER TABLE %s.%I ADD CONSTRAINT %I PRIMARY KEY (%s)', qs, j.table_name, j.index_name,
                                substring(j.signature from '\((.*)\)'))
                ELSE concat(CASE WHEN j.named_name IS NOT NULL
                                 THEN format('DROP INDEX CONCURRENTLY %s.%I; ', qs, j.index_name) END,
                            format('CREATE %sINDEX CONCURRENTLY %I ON %s.%I USING %s',
                                   CASE WHEN j.is_unique THEN 'UNIQUE ' ELSE '' END, j.index_name, qs, j.table_name,
                                   j.signature)) END
      FROM judged j
     ORDER BY j.ordinal;

    -- 2. The six application triggers: present, enabled, native.
    RETURN QUERY
    WITH app AS (
        SELECT DISTINCT nt.replaces AS trigger_name, nt.table_name,
               to_regclass(format('%I.%I', target_schema, nt.table_name)) AS relid
          FROM crm_native.native_trigger nt),
    judged AS (
        SELECT a.*,
               (SELECT array_agg(format('%s (%s)', t.tgname, t.tgfoid::regprocedure) ORDER BY t.tgname)
                  FROM crm_native.native_trigger nt
                  JOIN pg_trigger t ON t.tgrelid = a.relid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
                  JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE nt.replaces = a.trigger_name AND p.pronamespace = 'crm_native'::regnamespace
                   AND crm_native._trigger_args_are(t.tgnargs, t.tgargs, false)) AS native,
               (SELECT count(*) FROM crm_native.native_trigger nt WHERE nt.replaces = a.trigger_name) AS native_expected,
               (SELECT array_agg(t.tgname::text ORDER BY t.tgname)
                  FROM crm_native.native_trigger nt
                  JOIN pg_trigger t ON t.tgrelid = a.relid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
                 WHERE nt.replaces = a.trigger_name AND t.tgenabled IN ('D', 'R')) AS native_disabled,
               own.oid AS own_oid, own.tgenabled AS own_enabled, own.tgfoid AS own_fn
          FROM app a
          LEFT JOIN LATERAL (SELECT t.oid, t.tgenabled, t.tgfoid FROM pg_trigger t
                              WHERE t.tgrelid = a.relid AND t.tgname = a.trigger_name AND NOT t.tgisinternal) own ON true)
    SELECT format('%I.%I', j.table_name, j.trigger_name),
           'trigger',
           CASE WHEN j.relid IS NULL THEN 'missing'
                WHEN cardinality(j.native_disabled) > 0 THEN 'disabled'
                WHEN cardinality(j.native) = j.native_expected THEN 'ok'
                WHEN j.own_oid IS NOT NULL AND j.own_enabled IN ('D', 'R') THEN 'disabled'
                WHEN j.own_oid IS NOT NULL OR cardinality(j.native) > 0 THEN 'different'
                ELSE 'missing' END,
           CASE WHEN j.relid IS NULL THEN format('table %I.%I does not exist', target_schema, j.table_name)
                WHEN cardinality(j.native_disabled) > 0
                    THEN format('native, disabled: %s', array_to_string(j.native_disabled, ', '))
                WHEN cardinality(j.native) = j.native_expected
                    THEN format('native: %s', array_to_string(j.native, ', '))
                WHEN j.own_oid IS NOT NULL
                    THEN format('%snot native: %s runs %s (%s)',
                                CASE WHEN j.own_enabled IN ('D', 'R') THEN 'disabled, ' ELSE '' END,
                                j.trigger_name, j.own_fn::regprocedure,
                                (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                                  WHERE p.oid = j.own_fn))
                WHEN cardinality(j.native) > 0
                    THEN format('only %s of %s native triggers: %s', cardinality(j.native), j.native_expected,
                                array_to_string(j.native, ', '))
                ELSE 'no such trigger, native or not' END,
           CASE WHEN j.relid IS NULL THEN NULL
                WHEN cardinality(j.native_disabled) > 0
                    THEN (SELECT string_agg(format('ALTER TABLE %s.%I ENABLE TRIGGER %I', qs, j.table_name, d), '; ')
                            FROM unnest(j.native_disabled) d)
                WHEN cardinality(j.native) = j.native_expected THEN NULL
                WHEN j.own_oid IS NOT NULL AND j.own_enabled IN ('D', 'R')
                    THEN format('ALTER TABLE %s.%I ENABLE TRIGGER %I; SELECT crm_native.install(%L)', qs, j.table_name,
                                j.trigger_name, target_schema)
                ELSE format('SELECT crm_native.install(%L)', target_schema) END
      FROM judged j
     ORDER BY j.table_name, j.trigger_name;

    -- 2b. The statement triggers that go on each partition (native_trigger.
    --     on_partitions): a partition created or attached after install()
    --     lacks them, and a statement naming it would not update the metrics.
    --     Then such triggers left on a table that is no longer a partition.
    RETURN QUERY
    WITH judged AS (
        SELECT nt.table_name, nt.trigger_name, part, t.oid AS trg, t.tgenabled, p.oid AS fn,
               p.pronamespace = 'crm_native'::regnamespace AS native,
               crm_native._trigger_args_are(t.tgnargs, t.tgargs, true) AS args_ok,
               home.tgenabled AS home_enabled
          FROM crm_native.native_trigger nt
          CROSS JOIN LATERAL crm_native._partitions(target_schema, nt.table_name) part
          LEFT JOIN pg_trigger home ON home.tgrelid = to_regclass(format('%I.%I', target_schema, nt.table_name))
                                   AND home.tgname = nt.trigger_name AND NOT home.tgisinternal
          LEFT JOIN pg_trigger t ON t.tgrelid = part AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
          LEFT JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE nt.on_partitions)
    SELECT format('%s.%I', j.part, j.trigger_name),
           'trigger',
           CASE WHEN j.trg IS NULL THEN 'missing'
                WHEN NOT j.native OR NOT j.args_ok THEN 'different'
                WHEN j.tgenabled IN ('D', 'R') AND j.home_enabled IN ('O', 'A') THEN 'disabled'
                WHEN j.tgenabled IS DISTINCT FROM j.home_enabled THEN 'different'
                ELSE 'ok' END,
           CASE WHEN j.trg IS NULL
                    THEN format('partition %s of %I.%I has no trigger %I: a statement naming the partition '
                                'does not update %I.customer_metrics', j.part, target_schema, j.table_name,
                                j.trigger_name, target_schema)
                WHEN NOT j.native
                    THEN format('not native: %I on partition %s runs %s', j.trigger_name, j.part, j.fn::regprocedure)
                WHEN NOT j.args_ok
                    THEN format('%I on partition %s is not declared with the argument ''partition''', j.trigger_name,
                                j.part)
                WHEN j.tgenabled IS DISTINCT FROM j.home_enabled
                    THEN format('enabled state %s on partition %s, %s on %I.%I', j.tgenabled, j.part,
                                coalesce(j.home_enabled::text, 'no trigger'), target_schema, j.table_name)
                ELSE format('native on partition %s: %s', j.part, j.fn::regprocedure) END,
           CASE WHEN j.trg IS NULL OR (j.native AND NOT j.args_ok)
                    THEN format('SELECT crm_native.install(%L)', target_schema)
                WHEN NOT j.native OR j.tgenabled IS DISTINCT FROM j.home_enabled
                    THEN format('DROP TRIGGER %I ON %s; SELECT crm_native.install(%L)', j.trigger_name, j.part,
                                target_schema) END
      FROM judged j
     ORDER BY j.table_name, j.trigger_name, j.part::text;
    RETURN QUERY
    SELECT format('%s.%I', l.rel, l.trigger_name),
           'trigger',
           'different',
           format('%I on %s, no longer below the table install() attached it for (DETACH PARTITION keeps it; '
                  'any schema): it does nothing there', l.trigger_name, l.rel),
           format('DROP TRIGGER %I ON %s', l.trigger_name, l.rel)
      FROM crm_native._left_partition_triggers() l;

    -- 3. What the native triggers rely on: indexes, then columns and types.
    RETURN QUERY
    SELECT format('%I (%s)', r.table_name, array_to_string(r.columns, ', ')),
           'dependency',
           CASE WHEN x.relid IS NULL OR x.found IS NULL THEN 'missing' ELSE 'ok' END,
           CASE WHEN x.relid IS NULL THEN format('table %I.%I does not exist', target_schema, r.table_name)
                WHEN x.found IS NULL
                    THEN format('no valid btree index leading with (%s)%s%s; needed by %s',
                                array_to_string(r.columns, ', '),
                                CASE WHEN r.must_be_unique THEN ', unique' ELSE '' END,
                                CASE WHEN NOT r.ordered THEN ' (first column first, then any order)' ELSE '' END,
                                r.needed_by)
                ELSE format('%I; needed by %s', x.found, r.needed_by) END,
           CASE WHEN x.relid IS NOT NULL AND x.found IS NULL THEN format(r.fix, qs) END
      FROM crm_native.required_index r
     CROSS JOIN LATERAL (
        SELECT rel.relid,
               crm_native._index_leading_with(rel.relid, r.columns, r.ordered, r.must_be_unique, r.allowed_predicate) AS found
          FROM (SELECT to_regclass(format('%I.%I', target_schema, r.table_name))::oid AS relid) rel) x
     ORDER BY r.ordinal;

    RETURN QUERY
    SELECT format('%I.%I', rc.table_name, rc.column_name),
           'column',
           CASE WHEN a.attnum IS NULL THEN 'missing'
                WHEN NOT (a.atttypid::regtype = ANY (rc.types)) THEN 'different'
                ELSE 'ok' END,
           CASE WHEN c.oid IS NULL THEN format('table %I.%I does not exist', target_schema, rc.table_name)
                WHEN a.attnum IS NULL THEN format('no column %I in %I', rc.column_name, rc.table_name)
                WHEN NOT (a.atttypid::regtype = ANY (rc.types))
                    THEN format('type %s, expected %s', format_type(a.atttypid, NULL), array_to_string(rc.types, ' or '))
                ELSE format_type(a.atttypid, NULL) END,
           CASE WHEN c.oid IS NULL THEN NULL
                WHEN a.attnum IS NULL
                    THEN format('ALTER TABLE %s.%I ADD COLUMN %I %s', qs, rc.table_name, rc.column_name, rc.types[1])
                WHEN NOT (a.atttypid::regtype = ANY (rc.types))
                    THEN format('ALTER TABLE %s.%I ALTER COLUMN %I TYPE %s', qs, rc.table_name, rc.column_name, rc.types[1]) END
      FROM crm_native.required_column rc
      LEFT JOIN pg_class c ON c.relnamespace = nsp AND c.relname = rc.table_name AND c.relkind IN ('r', 'p')
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = rc.column_name AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY rc.ordinal;

    -- 4. Every foreign key of the schema's tables, and the index that leads
    --    with its referencing columns (deleting a referenced row, a company or
    --    a user, otherwise scans the whole referencing table). On Citus a key
    --    between distributed tables ends with company_id, which every shard
    --    holds few values of: an index led by the other columns serves it.
    RETURN QUERY
    WITH fk_all AS (
        SELECT con.conname, con.conrelid, con.confrelid, c.relname AS tbl,
               array_agg(a.attname::text ORDER BY k.n) AS key_cols
          FROM pg_constraint con
          JOIN pg_class c ON c.oid = con.conrelid
         CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k (attnum, n)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
         WHERE con.contype = 'f' AND c.relnamespace = nsp
         GROUP BY con.oid, con.conname, con.conrelid, con.confrelid, c.relname),
    fk AS (
        SELECT f.*, CASE WHEN distributed AND cardinality(f.key_cols) > 1
                              AND f.key_cols[cardinality(f.key_cols)] = 'company_id'
                         THEN f.key_cols[1:cardinality(f.key_cols) - 1] ELSE f.key_cols END AS cols
          FROM fk_all f)
    SELECT format('%I.%I', f.tbl, f.conname),
           'foreign key index',
           CASE WHEN x.found IS NULL THEN 'missing' ELSE 'ok' END,
           CASE WHEN x.found IS NULL
                THEN format('no index leads with %I (%s) -> %s: a DELETE or key UPDATE on %s scans all of %I',
                            f.tbl, array_to_string(f.cols, ', '), f.confrelid::regclass, f.confrelid::regclass, f.tbl)
                ELSE format('%I (%s) -> %s: %I', f.tbl, array_to_string(f.cols, ', '), f.confrelid::regclass, x.found) END,
           CASE WHEN x.found IS NULL
                THEN format('CREATE INDEX CONCURRENTLY %I ON %s.%I USING btree (%s)',
                            left(f.tbl || '_' || array_to_string(f.cols, '_') || '_idx', 63), qs, f.tbl,
                            (SELECT string_agg(quote_ident(col), ', ') FROM unnest(f.cols) col)) END
      FROM fk f
     CROSS JOIN LATERAL (
        SELECT crm_native._index_leading_with(f.conrelid, f.cols, false, false,
                   CASE WHEN cardinality(f.cols) = 1 THEN format('(%s IS NOT NULL)', quote_ident(f.cols[1])) END)
               AS found) x
     ORDER BY f.tbl, f.conname;
END
$$;

-- ---- crm_native._relink_start() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._relink_start(target_schema text, batch_size int)
RETURNS crm_native.relink_progress
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.relink_chats';
    idx text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION '%: batch_size must be at least 1 (got %)', fn, coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM crm_native._require_schema(fn, target_schema);
    PERFORM crm_native._ops_require_native(fn, target_schema);
    idx := crm_native._unlinked_chats_index(target_schema);
    IF idx IS NULL THEN
        RAISE NOTICE '%: no index on the unlinked chats of %.%: each batch walks the primary key', fn,
                     quote_ident(target_schema), quote_ident('VC Usage')
            USING HINT = format('On a large table with few unlinked chats, create one first: '
                                'CREATE INDEX CONCURRENTLY vc_usage_unlinked_idx ON %I.%I (id) WHERE customer_id IS NULL;',
                                target_schema, 'VC Usage');
    END IF;
    RETURN ROW(false, NULL, 0, 0, 0, 0, clock_timestamp(), idx)::crm_native.relink_progress;
END
$$;

-- ---- crm_native._relink_batch() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._relink_batch(target_schema text, batch_size int, progress crm_native.relink_progress)
RETURNS crm_native.relink_progress
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.relink_chats';
    p crm_native.relink_progress := progress;
    id_type text;
    ids text[];
    linked_to uuid[];
    batch_last text;
    n_seen bigint;
    n_linked bigint;
    n_created bigint;
    secs double precision;
BEGIN
    -- The batch's ids first (an index scan: the unlinked-chats index or the
    -- primary key, from the last id on), then the UPDATE by primary key. The
    -- ids travel as text and are cast back to the id column's type, so that
    -- any id type (bigint, uuid, ...) keeps its order and its index.
    SELECT format_type(a.atttypid, a.atttypmod) INTO id_type
      FROM pg_attribute a
     WHERE a.attrelid = format('%I.%I', target_schema, 'VC Usage')::regclass AND a.attname = 'id' AND NOT a.attisdropped;
    EXECUTE format('SELECT array_agg(s.id::text ORDER BY s.id) FROM (SELECT v.id FROM %I.%I v
                     WHERE v.customer_id IS NULL AND v.id IS NOT NULL %s ORDER BY v.id LIMIT $2) s',
                   target_schema, 'VC Usage',
                   CASE WHEN p.last_id IS NOT NULL THEN format('AND v.id > $1::%s', id_type) ELSE '' END)
       INTO ids USING p.last_id, batch_size;
    n_seen := coalesce(cardinality(ids), 0);
    IF n_seen > 0 THEN
        batch_last := ids[n_seen];
        EXECUTE format('WITH relinked AS (
                            UPDATE %1$I.%2$I u SET customer_email = u.customer_email
                             WHERE u.id = ANY ($1::%3$s[]) AND u.customer_id IS NULL
                            RETURNING u.customer_id)
                        SELECT array_agg(DISTINCT r.customer_id) FILTER (WHERE r.customer_id IS NOT NULL),
                               count(r.customer_id)
                          FROM relinked r', target_schema, 'VC Usage', id_type)
           INTO linked_to, n_linked USING ids;
        -- customers this transaction created for them: their 'created'
        -- event is ours (a separate statement: the UPDATE's own snapshot
        -- does not see what its triggers wrote)
        EXECUTE format('SELECT count(DISTINCT e.customer_id) FROM %I.customer_events e
                         WHERE e.customer_id = ANY ($1) AND e.event_type = ''created''
                           AND e.xmin = pg_current_xact_id()::xid', target_schema)
           INTO n_created USING linked_to;
    END IF;

    IF n_seen = 0 THEN
        p.done := true;
    ELSE
        p.batches := p.batches + 1;
        p.last_id := batch_last;
        p.seen := p.seen + n_seen;
        p.linked := p.linked + n_linked;
        p.created := p.created + n_created;
        p.done := n_seen < batch_size;
    END IF;
    secs := greatest(extract(epoch FROM clock_timestamp() - p.started), 0.000001);
    IF n_seen > 0 THEN
        RAISE NOTICE '%: batch %: % chats, % linked, % not linked, % customers created; so far % chats, % linked',
                     fn, p.batches, n_seen, n_linked, n_seen - n_linked, n_created, p.seen, p.linked
            USING DETAIL = format('%s chats/s, %s s elapsed, up to chat id %s', round((p.seen / secs)::numeric, 1),
                                  round(secs::numeric, 3), p.last_id);
    END IF;
    IF p.done THEN
        RAISE NOTICE '%: done: % chats in % batches, % linked, % left unlinked, % customers created',
                     fn, p.seen, p.batches, p.linked, p.seen - p.linked, p.created
            USING DETAIL = format('%s chats/s, %s s; index: %s', round((p.seen / secs)::numeric, 1),
                                  round(secs::numeric, 3), coalesce(p.uses_index, 'none (primary key)')),
                  HINT = CASE WHEN p.seen > p.linked THEN
                             'A chat left unlinked has no email, phone or name that normalizes to a key, '
                             'or a warning above says why the sync skipped it.'
                         ELSE 'Every chat looked at is linked.' END;
    END IF;
    RETURN p;
END
$$;

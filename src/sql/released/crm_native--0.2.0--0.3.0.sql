-- crm_native 0.2.0 -> 0.3.0: generated from src/sql/upgrade/0.2.0--0.3.0.sql and src/sql/*.sql, do not edit
-- crm_native 0.2.0 -> 0.3.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.3.0 and the functions 0.3.0 changed to this
-- file to make crm_native--0.2.0--0.3.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.2.0 has exactly the objects of a fresh 0.3.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.3.0'" to load this file. \quit

-- Nothing is dropped or renamed in 0.3.0: it adds crm_native.citus_problems()
-- (90_citus.sql), which install() now consults, and status(), install(),
-- uninstall(), rebuild_matching_keys() and verify_schema() check their schema
-- argument through crm_native._require_schema() (same message and SQLSTATE).

-- verify_schema()/health() accept a unique key with company_id added (Citus).
UPDATE crm_native.required_index
   SET needed_by = 'metrics_*: INSERT ... ON CONFLICT needs a unique index on customer_id (on Citus: customer_id, company_id)'
 WHERE ordinal = 3;

-- search_customers() follows merge chains in its statement (a recursive CTE),
-- so that on Citus it runs on the company's shard.
DROP FUNCTION crm_native._merge_survivor(text, uuid, uuid);

-- ---- src/sql/90_citus.sql
-- Citus (docs/citus.md): what the native triggers need when the CRM tables
-- are distributed. On a Citus shard the triggers run their statements against
-- the co-located shards of the other CRM tables (src/pg/citus_shards.cpp), so
-- every CRM table must be distributed by company_id in one co-location
-- group, with metadata on the workers, and the lookups by customer id need
-- indexes led by it.

-- Whether the CRM tables of target_schema are distributed with Citus.
CREATE FUNCTION crm_native._citus_distributed(target_schema text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
                    WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
                      AND c.relname IN (SELECT rc.table_name FROM crm_native.required_columns() rc));
END
$$;

CREATE FUNCTION crm_native.citus_problems(target_schema text DEFAULT 'public')
RETURNS TABLE (problem text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the tables the triggers use, in the column list's order
    crm_tables text[] := (SELECT array_agg(t.table_name ORDER BY t.first)
                            FROM (SELECT rc.table_name, min(rc.ordinal) AS first
                                    FROM crm_native.required_columns() rc GROUP BY rc.table_name) t);
    nsp oid;
    r record;
    groups int;
BEGIN
    SELECT oid INTO nsp FROM pg_namespace WHERE nspname = target_schema;
    -- without Citus, or nothing distributed (a single-node schema on a Citus server)
    IF nsp IS NULL OR NOT crm_native._citus_distributed(target_schema) THEN
        RETURN;
    END IF;

    FOR r IN
        SELECT t.name, c.oid AS relid, p.partmethod, p.repmodel,
               CASE WHEN p.partkey IS NOT NULL THEN column_to_column_name(p.logicalrelid, p.partkey) END AS dist_column
          FROM unnest(crm_tables) AS t(name)
          LEFT JOIN pg_class c ON c.relname = t.name AND c.relnamespace = nsp
          LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
         ORDER BY array_position(crm_tables, t.name)
    LOOP
        CONTINUE WHEN r.relid IS NULL;  -- install() reports missing tables
        IF r.partmethod IS NULL OR r.partmethod <> 'h' OR r.dist_column IS DISTINCT FROM 'company_id' THEN
            problem := format('table %I.%I is not distributed by company_id', target_schema, r.name);
            fix := format('SELECT create_distributed_table(%L, %L, colocate_with => %L);',
                          format('%I.%I', target_schema, r.name), 'company_id',
                          format('%I.%I', target_schema, 'customers'));
            RETURN NEXT;
        END IF;
    END LOOP;

    SELECT count(DISTINCT p.colocationid) INTO groups
      FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
     WHERE c.relnamespace = nsp AND c.relname = ANY (crm_tables) AND p.partmethod = 'h';
    IF groups > 1 THEN
        problem := 'the distributed CRM tables are not co-located (' || groups || ' co-location groups)';
        fix := format('SELECT update_distributed_table_colocation(%L, colocate_with => %L); -- for each table',
                      format('%I.%I', target_schema, 'VC Usage'), format('%I.%I', target_schema, 'customers'));
        RETURN NEXT;
    END IF;

    -- Citus refuses unique keys without the distribution column; the
    -- triggers' lookups by customer id need an index led by it.
    FOR r IN
        SELECT t.name, t.col
          FROM (VALUES ('customers', 'id'), ('customer_metrics', 'customer_id')) AS t(name, col)
          JOIN pg_class c ON c.relname = t.name AND c.relnamespace = nsp
         WHERE NOT EXISTS (SELECT FROM pg_index i
                            WHERE i.indrelid = c.oid AND i.indisvalid AND i.indpred IS NULL
                              AND i.indkey[0] = (SELECT a.attnum FROM pg_attribute a
                                                  WHERE a.attrelid = c.oid AND a.attname = t.col))
    LOOP
        problem := format('table %I.%I has no index led by %I (each chat looks customers up by it)',
                          target_schema, r.name, r.col);
        fix := format('CREATE INDEX ON %I.%I (%I);', target_schema, r.name, r.col);
        RETURN NEXT;
    END LOOP;
    -- the metrics writers insert-or-update one row per customer (ON CONFLICT)
    IF NOT EXISTS (SELECT FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid
                    WHERE c.relname = 'customer_metrics' AND c.relnamespace = nsp
                      AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL
                      AND i.indexprs IS NULL
                      AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                             FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey))
                          IN ('{customer_id}', '{company_id,customer_id}')) THEN
        problem := format('table %I.customer_metrics has no unique key on (customer_id, company_id)', target_schema);
        fix := format('ALTER TABLE %I.customer_metrics ADD PRIMARY KEY (customer_id, company_id);', target_schema);
        RETURN NEXT;
    END IF;

    IF coalesce(current_setting('citus.enable_unsafe_triggers', true), 'off') <> 'on' THEN
        problem := 'citus.enable_unsafe_triggers is off (Citus refuses triggers on distributed tables)';
        fix := 'ALTER SYSTEM SET citus.enable_unsafe_triggers = on; SELECT pg_reload_conf(); -- on every node';
        RETURN NEXT;
    END IF;

    IF EXISTS (SELECT FROM pg_dist_node WHERE noderole = 'primary' AND isactive AND NOT hasmetadata
                                          AND groupid <> 0) THEN
        problem := 'a worker has no Citus metadata (the triggers on its shards look their co-located shards up there)';
        fix := 'SELECT start_metadata_sync_to_all_nodes();';
        RETURN NEXT;
    END IF;
END
$$;

COMMENT ON FUNCTION crm_native.citus_problems(text) IS
    'What the native triggers need and miss on a schema distributed with Citus, each with the fix; empty without Citus (docs/citus.md)';

-- ---- crm_native.status() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.status(target_schema text DEFAULT 'public')
RETURNS TABLE (trigger_name text, table_name text, implementation text, function text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM crm_native._require_schema('crm_native.status', target_schema);
    RETURN QUERY
    SELECT t.tgname::text,
           c.relname::text,
           CASE WHEN pn.nspname = 'crm_native' THEN 'native' ELSE l.lanname::text END,
           p.oid::regprocedure::text
    FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_proc p ON p.oid = t.tgfoid
    JOIN pg_namespace pn ON pn.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE n.nspname = target_schema
      AND NOT t.tgisinternal
      AND c.relname IN (SELECT nt.table_name FROM crm_native.native_trigger nt)
    ORDER BY c.relname, t.tgname;
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
    existing record;
    rel regclass;
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
    --    takes over the enabled state of the trigger it replaces.
    FOR r IN
        SELECT nt.* FROM crm_native.native_trigger nt ORDER BY nt.table_name, nt.trigger_name
    LOOP
        rel := format('%I.%I', target_schema, r.table_name)::regclass;
        SELECT pn.nspname AS fn_schema, p.oid::regprocedure::text AS fn
          INTO existing
          FROM pg_trigger t
          JOIN pg_proc p ON p.oid = t.tgfoid
          JOIN pg_namespace pn ON pn.oid = p.pronamespace
         WHERE t.tgrelid = rel AND t.tgname = r.trigger_name AND NOT t.tgisinternal;
        IF FOUND THEN
            IF existing.fn_schema = 'crm_native' THEN
                CONTINUE;  -- installed already
            END IF;
            RAISE EXCEPTION 'crm_native.install: table %.% already has a trigger "%" (calling %) that crm_native does not replace',
                            quote_ident(target_schema), quote_ident(r.table_name), r.trigger_name, existing.fn
                USING ERRCODE = 'duplicate_object',
                      HINT = 'Rename or drop that trigger, then call install() again.';
        END IF;
        EXECUTE format(r.ddl, rel);
        PERFORM crm_native._set_trigger_enabled(target_schema, r.table_name, r.trigger_name, rt.enabled)
           FROM crm_native.replaced_trigger rt
          WHERE rt.schema_name = target_schema AND rt.table_name = r.table_name AND rt.trigger_name = r.replaces;
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

    -- 1. Drop the registered native triggers (only those calling crm_native).
    FOR r IN
        SELECT nt.table_name AS tbl, nt.trigger_name AS trg, t.tgrelid
          FROM crm_native.native_trigger nt
          JOIN pg_class c ON c.relname = nt.table_name AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
          JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
          JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE p.pronamespace = 'crm_native'::regnamespace
         ORDER BY 1, 2
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.trg, r.tgrelid::regclass);
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
                PERFORM crm_native._set_trigger_enabled(target_schema, r.table_name, r.trigger_name, r.enabled);
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

-- ---- crm_native._customer_keys() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._customer_keys(name text, email text, phone text)
RETURNS TABLE (key_type text, key_value text, normalized_value text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.key_type, k.key_value, k.normalized_value
      FROM unnest(ARRAY['name', 'email', 'phone'], ARRAY[name, email, phone],
                  ARRAY[crm_native.normalize_name(name), crm_native.normalize_email(email),
                        crm_native.normalize_phone(phone)]) AS k (key_type, key_value, normalized_value)
     WHERE k.normalized_value IS NOT NULL
$$;

-- ---- crm_native.rebuild_matching_keys() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.rebuild_matching_keys(target_schema text DEFAULT 'public',
                                                 customer uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
BEGIN
    PERFORM crm_native._require_schema('crm_native.rebuild_matching_keys', target_schema);
    EXECUTE format('DELETE FROM %I.customer_matching_keys WHERE $1 IS NULL OR customer_id = $1',
                   target_schema) USING customer;
    EXECUTE format($q$
        INSERT INTO %1$I.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
        SELECT c.id, c.company_id, k.key_type, k.key_value, k.normalized_value
          FROM %1$I.customers c
         CROSS JOIN LATERAL crm_native._customer_keys(c.customer_name, c.customer_email, c.customer_phone) k
         WHERE ($1 IS NULL OR c.id = $1)
         ORDER BY c.id, k.key_type$q$, target_schema) USING customer;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- ---- crm_native.rebuild_metrics() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.rebuild_metrics(target_schema text DEFAULT 'public',
                                           customer uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    deleted bigint;
    written bigint;
    -- On Citus (90_citus.sql) every key carries company_id: the statements
    -- join and group on it too, so that they run shard by shard.
    distributed boolean := crm_native._citus_distributed(target_schema);
    same_company text := CASE WHEN distributed THEN ' AND v.company_id = m.company_id' ELSE '' END;
    company_group text := CASE WHEN distributed THEN ', v.company_id' ELSE '' END;
    conflict_key text := CASE WHEN distributed THEN '(customer_id, company_id)' ELSE '(customer_id)' END;
BEGIN
    PERFORM crm_native._require_schema('crm_native.rebuild_metrics', target_schema);
    EXECUTE format('LOCK TABLE %I.customer_metrics IN SHARE ROW EXCLUSIVE MODE', target_schema);
    EXECUTE format($q$
        DELETE FROM %1$I.customer_metrics m
         WHERE ($1 IS NULL OR m.customer_id = $1)
           AND NOT EXISTS (SELECT 1 FROM %1$I."VC Usage" v WHERE v.customer_id = m.customer_id%2$s) $q$,
        target_schema, same_company) USING customer;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    EXECUTE format($q$
        INSERT INTO %1$I.customer_metrics AS m
               (customer_id, company_id, total_conversations, total_sessions, total_views,
                first_interaction_at, last_interaction_at, refreshed_at)
        SELECT v.customer_id, (array_agg(v.company_id))[1], count(*), count(DISTINCT v.session_id),
               coalesce(sum(v.view_count), 0), min(v.created_at), max(v.created_at), now()
          FROM %1$I."VC Usage" v
         WHERE v.customer_id IS NOT NULL AND ($1 IS NULL OR v.customer_id = $1)
         GROUP BY v.customer_id%2$s
         ORDER BY v.customer_id
        ON CONFLICT %3$s DO UPDATE
           SET company_id = EXCLUDED.company_id,
               total_conversations = EXCLUDED.total_conversations,
               total_sessions = EXCLUDED.total_sessions,
               total_views = EXCLUDED.total_views,
               first_interaction_at = EXCLUDED.first_interaction_at,
               last_interaction_at = EXCLUDED.last_interaction_at,
               refreshed_at = EXCLUDED.refreshed_at
         WHERE (m.company_id, m.total_conversations, m.total_sessions, m.total_views,
                m.first_interaction_at, m.last_interaction_at)
               IS DISTINCT FROM
               (EXCLUDED.company_id, EXCLUDED.total_conversations, EXCLUDED.total_sessions,
                EXCLUDED.total_views, EXCLUDED.first_interaction_at, EXCLUDED.last_interaction_at) $q$,
        target_schema, company_group, conflict_key) USING customer;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN deleted + written;
END
$fn$;

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
                 WHERE nt.replaces = a.trigger_name AND p.pronamespace = 'crm_native'::regnamespace) AS native,
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

-- ---- crm_native.health() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.health(target_schema text DEFAULT 'public', metrics_sample integer DEFAULT 1000)
RETURNS TABLE (check_name text, status text, value numeric, detail text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
    total bigint;
    sampled bigint;
    sample_note text;
    r record;
    stats_available boolean := true;
BEGIN
    PERFORM crm_native._require_schema('crm_native.health', target_schema);
    IF metrics_sample IS NOT NULL AND metrics_sample < 1 THEN
        RAISE EXCEPTION 'crm_native.health: metrics_sample must be positive or NULL (all customers)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 1. verify_schema, by kind
    FOR r IN
        SELECT k.kind, k.severity, k.label,
               count(v.*) FILTER (WHERE v.status <> 'ok') AS problems,
               string_agg(v.object || ' ' || v.status, ', ' ORDER BY v.object) FILTER (WHERE v.status <> 'ok') AS list
          FROM (VALUES (1, 'dependency', 'error', 'schema: indexes the native triggers rely on'),
                       (2, 'column', 'error', 'schema: columns the native triggers use'),
                       (3, 'trigger', 'error', 'schema: the six triggers, native and enabled'),
                       (4, 'index', 'warning', 'schema: the seed''s index inventory'),
                       (5, 'foreign key index', 'warning', 'schema: an index for every foreign key'))
               AS k (ord, kind, severity, label)
          LEFT JOIN crm_native.verify_schema(target_schema) v ON v.kind = k.kind
         GROUP BY k.ord, k.kind, k.severity, k.label
         ORDER BY k.ord
    LOOP
        check_name := r.label;
        status := CASE WHEN r.problems = 0 THEN 'ok' ELSE r.severity END;
        value := r.problems;
        detail := CASE WHEN r.problems = 0 THEN 'all as expected'
                       ELSE format('%s not ok: %s (SELECT * FROM crm_native.verify_schema(%L) WHERE status <> ''ok'' gives the fixes)',
                                   r.problems, r.list, target_schema) END;
        RETURN NEXT;
    END LOOP;

    -- The customers the recomputation checks: a random sample, or all.
    IF to_regclass(format('%I.customers', target_schema)) IS NULL
       OR cardinality(crm_native.missing_objects(target_schema)) > 0 THEN
        check_name := 'data checks'; status := 'error'; value := NULL;
        detail := 'skipped: the schema lacks what the triggers use (see the schema checks)';
        RETURN NEXT;
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I.customers', target_schema) INTO total;
    CREATE TEMP TABLE IF NOT EXISTS crm_native_health_sample (id uuid PRIMARY KEY) ON COMMIT DROP;
    TRUNCATE crm_native_health_sample;
    EXECUTE format('INSERT INTO crm_native_health_sample SELECT c.id FROM %I.customers c %s',
                   target_schema,
                   CASE WHEN metrics_sample IS NULL THEN '' ELSE 'ORDER BY random() LIMIT ' || metrics_sample END);
    GET DIAGNOSTICS sampled = ROW_COUNT;
    sample_note := CASE WHEN metrics_sample IS NULL THEN format('all %s customers checked', total)
                        WHEN sampled >= total THEN format('sample of %s: all %s customers checked', metrics_sample, total)
                        ELSE format('random sample of %s of %s customers (metrics_sample => NULL checks all)', sampled, total) END;

    -- 2. customer_metrics against a recomputation (verify_metrics' definitions)
    EXECUTE format($q$
        WITH s AS (SELECT id FROM crm_native_health_sample),
        expected AS (
            SELECT v.customer_id, array_agg(DISTINCT v.company_id) AS companies, count(*)::bigint AS n,
                   count(DISTINCT v.session_id)::bigint AS s, coalesce(sum(v.view_count), 0)::bigint AS w,
                   min(v.created_at) AS f, max(v.created_at) AS l
              FROM %1$I."VC Usage" v JOIN s ON s.id = v.customer_id
             GROUP BY v.customer_id),
        actual AS (SELECT m.* FROM %1$I.customer_metrics m JOIN s ON s.id = m.customer_id)
        SELECT count(*) FROM expected e FULL JOIN actual m ON m.customer_id = e.customer_id
         WHERE e.customer_id IS NULL OR m.customer_id IS NULL
            OR (e.n, e.s, e.w, e.f, e.l) IS DISTINCT FROM
               (m.total_conversations, m.total_sessions, m.total_views, m.first_interaction_at, m.last_interaction_at)
            OR m.company_id IS NULL OR NOT (m.company_id = ANY (e.companies)) $q$, target_schema) INTO n;
    check_name := 'customer_metrics equal to a recomputation';
    status := CASE WHEN n = 0 THEN 'ok' ELSE 'error' END;
    value := n;
    detail := format('%s customers whose metrics row differs; %s%s', n, sample_note,
                     CASE WHEN n > 0 THEN format('; SELECT * FROM crm_native.verify_metrics(%L) lists them, '
                                                 'crm_native.rebuild_metrics(%L) fixes them', target_schema, target_schema)
                          ELSE '' END);
    RETURN NEXT;

    -- 3. matching keys against the customers' current values
    EXECUTE format($q$
        WITH s AS (SELECT id FROM crm_native_health_sample),
        expected AS (
            SELECT c.id AS customer_id, c.company_id, k.key_type, k.key_value, k.normalized_value
              FROM %1$I.customers c JOIN s ON s.id = c.id
             CROSS JOIN LATERAL crm_native._customer_keys(c.customer_name, c.customer_email, c.customer_phone) k),
        actual AS (
            SELECT k.customer_id, k.company_id, k.key_type::text, k.key_value::text, k.normalized_value::text
              FROM %1$I.customer_matching_keys k JOIN s ON s.id = k.customer_id),
        diff AS ((SELECT * FROM expected EXCEPT ALL SELECT * FROM actual)
                 UNION ALL
                 (SELECT * FROM actual EXCEPT ALL SELECT * FROM expected))
        SELECT count(DISTINCT customer_id) FROM diff $q$, target_schema) INTO n;
    check_name := 'matching keys equal to the customers'' current values';
    status := CASE WHEN n = 0 THEN 'ok' ELSE 'error' END;
    value := n;
    detail := format('%s customers whose keys differ; %s%s', n, sample_note,
                     CASE WHEN n > 0 THEN format('; SELECT crm_native.rebuild_matching_keys(%L) rewrites them '
                                                 '(keys written by the plpgsql triggers or another library version differ)',
                                                 target_schema)
                          ELSE '' END);
    RETURN NEXT;

    -- 4. chats left unlinked although they bring contact data
    EXECUTE format($q$
        SELECT count(*) FILTER (WHERE v.customer_email IS NOT NULL OR v.customer_phone IS NOT NULL
                                   OR v.customer_name IS NOT NULL),
               count(*)
          FROM %I."VC Usage" v WHERE v.customer_id IS NULL $q$, target_schema) INTO n, total;
    check_name := 'chats left unlinked';
    status := CASE WHEN n = 0 THEN 'ok' ELSE 'warning' END;
    value := n;
    detail := format('%s unlinked chats with contact data (%s unlinked in all, whole table scanned)', n, total);
    BEGIN
        SELECT format('; since the statistics reset, customer_sync left %s without usable contact data and %s whose contact data could not be normalized',
                      coalesce(sum(t.unlinked_no_contact), 0), coalesce(sum(t.unlinked_normalize_failed), 0))
          INTO sample_note
          FROM crm_native.trigger_stats t
         WHERE t.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND t.function = 'crm_native.customer_sync';
        detail := detail || sample_note;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        stats_available := false;
    END;
    RETURN NEXT;

    -- 5. trigger p99 against the seed's budgets
    IF NOT stats_available THEN
        check_name := 'trigger p99 within the seed''s budgets';
        status := 'unknown'; value := NULL;
        detail := 'crm_native.trigger_stats needs crm_native in shared_preload_libraries';
        RETURN NEXT;
        RETURN;
    END IF;
    n := 0;
    FOR r IN
        SELECT t.function, t.table_name, t.calls, t.p99_ms, b.budget_ms, b.seed_estimate
          FROM crm_native.trigger_stats t
          LEFT JOIN crm_native.trigger_budget b ON 'crm_native.' || b.function_name = t.function
         WHERE t.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND t.table_name LIKE target_schema || '.%'
         ORDER BY t.function, t.table_name
    LOOP
        n := n + 1;
        check_name := format('trigger p99: %s on %s', r.function, r.table_name);
        status := CASE WHEN r.budget_ms IS NULL THEN 'unknown' WHEN r.p99_ms <= r.budget_ms THEN 'ok' ELSE 'warning' END;
        value := round(r.p99_ms::numeric, 3);
        detail := format('p99 %s ms over %s calls; budget %s ms (seed estimate %s)', round(r.p99_ms::numeric, 3), r.calls,
                         coalesce(r.budget_ms::text, 'none'), coalesce(r.seed_estimate, '-'));
        RETURN NEXT;
    END LOOP;
    IF n = 0 THEN
        check_name := 'trigger p99 within the seed''s budgets';
        status := 'ok'; value := NULL;
        detail := 'no native trigger of this schema has run since the statistics reset';
        RETURN NEXT;
    END IF;
END
$$;

-- ---- crm_native._index_leading_with() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._index_leading_with(relid oid, cols text[], ordered boolean,
                                               must_be_unique boolean, allowed_predicate text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ic.relname::text
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
     CROSS JOIN LATERAL (SELECT crm_native._index_key_attnames(i.indexrelid) AS k) keys
     WHERE i.indrelid = relid
       AND i.indisvalid AND i.indisready AND i.indislive
       AND am.amname = 'btree'
       AND cardinality(keys.k) >= cardinality(cols)
       AND keys.k[1] = cols[1]
       AND CASE WHEN ordered THEN keys.k[1:cardinality(cols)] = cols
                ELSE keys.k[1:cardinality(cols)] @> cols END
       -- unique: on exactly these columns, or on a schema distributed with
       -- Citus (which requires the distribution column in every key) per
       -- tenant, with company_id after them
       AND (NOT must_be_unique OR (i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                                   AND (i.indnkeyatts = cardinality(cols)
                                        OR (i.indnkeyatts = cardinality(cols) + 1
                                            AND keys.k[i.indnkeyatts] = 'company_id'
                                            AND crm_native._citus_distributed(
                                                    (SELECT n.nspname::text FROM pg_class c
                                                       JOIN pg_namespace n ON n.oid = c.relnamespace
                                                      WHERE c.oid = relid))))))
       AND (i.indpred IS NULL OR pg_get_expr(i.indpred, i.indrelid) = allowed_predicate)
     ORDER BY i.indisprimary DESC, i.indisunique DESC, ic.relname
     LIMIT 1
$$;

-- ---- crm_native.merge_customers() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.merge_customers(source uuid, target uuid, target_schema text DEFAULT 'public')
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.merge_customers';
    blank constant text := E' \t\r\n\f\v';
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

-- ---- crm_native._search_query() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._search_query(target_schema text, trgm text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $f$
    SELECT format($q$
        WITH RECURSIVE probes (rank, key_type, key) AS (
            VALUES (1, 'email', $4), (2, 'phone', $5), (3, 'name', $6)
        ), key_hits AS (
            SELECT k.customer_id AS holder, c.merged_into_customer_id IS NOT NULL AS merged,
                   p.rank, p.key_type AS matched_by, 1::real AS score
              FROM probes p
              JOIN %1$I.customer_matching_keys k
                ON k.company_id = $1 AND k.key_type = p.key_type AND k.normalized_value = p.key
              JOIN %1$I.customers c ON c.id = k.customer_id
             WHERE p.key IS NOT NULL
               AND c.company_id = $1
               AND (c.deleted_at IS NULL OR c.merged_into_customer_id IS NOT NULL)
        ), name_hits AS MATERIALIZED (
            SELECT c.id AS holder, c.merged_into_customer_id IS NOT NULL AS merged,
                   %2$I.similarity(c.customer_name, $2) AS score
              FROM %1$I.customers c
             WHERE $8 AND c.deleted_at IS NULL AND c.customer_name OPERATOR(%2$I.%%) $2
               AND (c.company_id = $1) IS TRUE   -- a filter: no btree on company_id instead of the GIN
        ), hits AS (
            SELECT holder, merged, rank, matched_by, score FROM key_hits
            UNION ALL
            (SELECT holder, merged, 3, 'similar_name', score FROM name_hits
              WHERE NOT merged ORDER BY score DESC, holder LIMIT $3)
            UNION ALL
            SELECT holder, merged, 3, 'similar_name', score FROM name_hits WHERE merged
        ), chain (start, cur, hop, next, deleted) AS (
            SELECT c.id, c.id, 0, c.merged_into_customer_id, c.deleted_at
              FROM (SELECT DISTINCT holder FROM hits WHERE merged) m
              JOIN %1$I.customers c ON c.id = m.holder AND c.company_id = $1
            UNION ALL
            SELECT ch.start, c.id, ch.hop + 1, c.merged_into_customer_id, c.deleted_at
              FROM chain ch
              JOIN %1$I.customers c ON c.id = ch.next AND c.company_id = $1
             WHERE ch.next IS NOT NULL AND ch.next <> ch.start AND ch.hop < 64
        ), resolved AS (
            SELECT CASE WHEN h.merged THEN s.survivor ELSE h.holder END AS survivor, h.rank, h.matched_by, h.score
              FROM hits h
              LEFT JOIN (SELECT ch.start, ch.cur AS survivor FROM chain ch
                          WHERE ch.next IS NULL AND ch.deleted IS NULL) s ON s.start = h.holder
        ), best AS (
            SELECT DISTINCT ON (r.survivor) r.survivor, r.rank, r.matched_by, r.score
              FROM resolved r
             WHERE r.survivor IS NOT NULL
             ORDER BY r.survivor, r.rank, r.score DESC
        )
        SELECT c.id, c.customer_name::text, c.customer_email::text, c.customer_phone::text,
               b.matched_by::text, b.score
          FROM best b
          JOIN %1$I.customers c ON c.id = b.survivor
         WHERE c.company_id = $1 AND c.deleted_at IS NULL
         ORDER BY b.rank, b.score DESC, c.id
         LIMIT $3$q$, target_schema, trgm)
$f$;

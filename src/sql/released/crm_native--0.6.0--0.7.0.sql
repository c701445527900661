-- crm_native 0.6.0 -> 0.7.0: generated from src/sql/upgrade/0.6.0--0.7.0.sql and src/sql/*.sql, do not edit
-- crm_native 0.6.0 -> 0.7.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.7.0 and the functions 0.7.0 changed to this
-- file to make crm_native--0.6.0--0.7.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.6.0 has exactly the objects of a fresh 0.7.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.7.0'" to load this file. \quit

-- install() and verify_schema() compare a native trigger's definition with
-- the registry's (_trigger_as_registered()): a trigger an older version
-- created otherwise (a database restored from a 0.1.0 dump kept a chat
-- UPDATE trigger that did not fire for customer_id and company_id) is
-- reported and created again. Two registry texts are rewritten the way
-- pg_get_triggerdef() writes them; the triggers themselves are unchanged.
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR DELETE OR UPDATE ON %1$s'
             ' FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log()'
 WHERE trigger_name = 'trg_customers_audit_log';
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON %1$s'
             ' FOR EACH ROW WHEN ((old.lifecycle_stage IS DISTINCT FROM new.lifecycle_stage))'
             ' EXECUTE FUNCTION crm_native.lifecycle_tracking()'
 WHERE trigger_name = 'trg_customers_lifecycle_tracking';

-- relink_chats() links a batch chat by chat when the batch fails, leaving a
-- chat that cannot be linked with a warning (_relink_batch, below); it
-- counts the customers it created with this helper, since the batches now
-- run in subtransactions.
CREATE FUNCTION crm_native._written_here(xmin xid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'crm_written_here' LANGUAGE C STRICT STABLE;

-- Maintenance, health() and search read keys with _matching_key(), which
-- gives NULL where the keys trigger writes no key (a key a LATIN1 database
-- cannot store), instead of failing for the whole database.
CREATE FUNCTION crm_native._matching_key(key_type text, value text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_matching_key' LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- ---- crm_native._partition_ddl_end() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._partition_ddl_end()
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

-- ---- crm_native._trigger_as_registered() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._trigger_as_registered(trigger oid, nt crm_native.native_trigger, rel regclass,
                                                  on_partition boolean)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off
AS $$
    SELECT regexp_replace(pg_get_triggerdef(trigger), ' WHEN \(.*\) EXECUTE ', ' WHEN EXECUTE ')
           = regexp_replace(format(nt.ddl, rel, CASE WHEN on_partition THEN quote_literal('partition') ELSE '' END),
                            ' WHEN \(.*\) EXECUTE ', ' WHEN EXECUTE ')
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
           crm_native._trigger_as_registered(t.oid, nt, rel, on_partition) AS as_registered
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
        IF existing.as_registered THEN
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
                   AND crm_native._trigger_as_registered(t.oid, nt, a.relid, false)) AS native,
               -- native, but defined otherwise than this version registers
               -- them (an older version's, restored from its dump)
               (SELECT array_agg(t.tgname::text ORDER BY t.tgname)
                  FROM crm_native.native_trigger nt
                  JOIN pg_trigger t ON t.tgrelid = a.relid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
                  JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE nt.replaces = a.trigger_name AND p.pronamespace = 'crm_native'::regnamespace
                   AND NOT crm_native._trigger_as_registered(t.oid, nt, a.relid, false)) AS drifted,
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
                WHEN cardinality(j.drifted) > 0 THEN 'different'
                WHEN cardinality(j.native) = j.native_expected THEN 'ok'
                WHEN j.own_oid IS NOT NULL AND j.own_enabled IN ('D', 'R') THEN 'disabled'
                WHEN j.own_oid IS NOT NULL OR cardinality(j.native) > 0 THEN 'different'
                ELSE 'missing' END,
           CASE WHEN j.relid IS NULL THEN format('table %I.%I does not exist', target_schema, j.table_name)
                WHEN cardinality(j.native_disabled) > 0
                    THEN format('native, disabled: %s', array_to_string(j.native_disabled, ', '))
                WHEN cardinality(j.drifted) > 0
                    THEN format('native, but not defined as this version of crm_native defines it (events, '
                                'UPDATE OF columns, arguments): %s', array_to_string(j.drifted, ', '))
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
                WHEN cardinality(j.drifted) = 0 AND cardinality(j.native) = j.native_expected THEN NULL
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
               crm_native._trigger_as_registered(t.oid, nt, part, true) AS as_registered,
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
                WHEN NOT j.native OR NOT j.as_registered THEN 'different'
                WHEN j.tgenabled IN ('D', 'R') AND j.home_enabled IN ('O', 'A') THEN 'disabled'
                WHEN j.tgenabled IS DISTINCT FROM j.home_enabled THEN 'different'
                ELSE 'ok' END,
           CASE WHEN j.trg IS NULL
                    THEN format('partition %s of %I.%I has no trigger %I: a statement naming the partition '
                                'does not update %I.customer_metrics', j.part, target_schema, j.table_name,
                                j.trigger_name, target_schema)
                WHEN NOT j.native
                    THEN format('not native: %I on partition %s runs %s', j.trigger_name, j.part, j.fn::regprocedure)
                WHEN NOT j.as_registered
                    THEN format('%I on partition %s is not defined as this version of crm_native defines it '
                                '(with the argument ''partition'')', j.trigger_name, j.part)
                WHEN j.tgenabled IS DISTINCT FROM j.home_enabled
                    THEN format('enabled state %s on partition %s, %s on %I.%I', j.tgenabled, j.part,
                                coalesce(j.home_enabled::text, 'no trigger'), target_schema, j.table_name)
                ELSE format('native on partition %s: %s', j.part, j.fn::regprocedure) END,
           CASE WHEN j.trg IS NULL OR (j.native AND NOT j.as_registered)
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
    -- No customer may change while its keys are rewritten: the keys trigger
    -- of a concurrent change would delete the old key before the rewrite
    -- inserts it again from the row it read (a stale key for good), and a
    -- customer created in between would get its keys twice. SHARE ROW
    -- EXCLUSIVE waits for the writers under way and holds off new ones
    -- (chats that only link to a customer go on), and another rebuild, which
    -- would otherwise write the keys a second time. One customer too: the
    -- lock is held only for that customer's rewrite, and a table lock works
    -- the same on Citus (a row lock by id alone spans the shards).
    EXECUTE format('LOCK TABLE %I.customers IN SHARE ROW EXCLUSIVE MODE', target_schema);
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
    relink_sql text;
    one_id text;
    one_linked uuid[];
    one_count bigint;
    failure_message text;
    failure_state text;
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
        relink_sql := format('WITH relinked AS (
                                UPDATE %1$I.%2$I u SET customer_email = u.customer_email
                                 WHERE u.id = ANY ($1::%3$s[]) AND u.customer_id IS NULL
                                RETURNING u.customer_id)
                            SELECT array_agg(DISTINCT r.customer_id) FILTER (WHERE r.customer_id IS NOT NULL),
                                   count(r.customer_id)
                              FROM relinked r', target_schema, 'VC Usage', id_type);
        BEGIN
            EXECUTE relink_sql INTO linked_to, n_linked USING ids;
        EXCEPTION
            -- transient, or nothing a single chat causes (resources, the
            -- system, privileges): the batch fails, the next run tries again
            WHEN serialization_failure OR deadlock_detected OR lock_not_available OR insufficient_resources
                 OR program_limit_exceeded OR system_error OR operator_intervention OR insufficient_privilege THEN
                RAISE;
            WHEN OTHERS THEN
                -- A chat whose sync fails every time (its customer breaks an
                -- application's CHECK, say) would stop every run at this
                -- batch: link the batch chat by chat, and leave each chat
                -- that fails unlinked, with a warning naming it and why.
                linked_to := '{}';
                n_linked := 0;
                FOREACH one_id IN ARRAY ids LOOP
                    BEGIN
                        EXECUTE relink_sql INTO one_linked, one_count USING ARRAY[one_id];
                        linked_to := linked_to || coalesce(one_linked, '{}');
                        n_linked := n_linked + one_count;
                    EXCEPTION
                        WHEN serialization_failure OR deadlock_detected OR lock_not_available
                             OR insufficient_resources OR program_limit_exceeded OR system_error
                             OR operator_intervention OR insufficient_privilege THEN
                            RAISE;
                        WHEN OTHERS THEN
                            GET STACKED DIAGNOSTICS failure_message = MESSAGE_TEXT, failure_state = RETURNED_SQLSTATE;
                            RAISE WARNING '%: chat % of %.% left unlinked: % (SQLSTATE %)', fn, one_id,
                                          quote_ident(target_schema), quote_ident('VC Usage'), failure_message,
                                          failure_state;
                    END;
                END LOOP;
        END;
        -- customers this transaction created for them: their 'created'
        -- event is ours (a separate statement: the UPDATE's own snapshot
        -- does not see what its triggers wrote)
        EXECUTE format('SELECT count(DISTINCT e.customer_id) FROM %I.customer_events e
                         WHERE e.customer_id = ANY ($1) AND e.event_type = ''created''
                           AND crm_native._written_here(e.xmin)', target_schema)
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

-- ---- crm_native._search_name_operator() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._search_name_operator(target_schema text, trgm text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
AS $$
    SELECT CASE WHEN EXISTS (
                SELECT FROM pg_index i
                  JOIN pg_opclass oc ON oc.oid = i.indclass[0]
                  JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                 WHERE i.indrelid = to_regclass(format('%I.%I', target_schema, 'customers'))
                   AND ocn.nspname = 'crm_native' AND oc.opcname = 'gin_trgm_leakproof_ops'
                   AND a.attname = 'customer_name' AND i.indisvalid AND i.indisready
                   -- a partial index other than the live customers' would not serve
                   -- the search's query: keep pg_trgm's operator then
                   AND (i.indpred IS NULL OR pg_get_expr(i.indpred, i.indrelid) = '(deleted_at IS NULL)'))
           THEN 'crm_native.%'
           ELSE format('%I.%%', trgm) END
$$;

-- ---- crm_native._unlinked_chats_index() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._unlinked_chats_index(target_schema text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
AS $$
    SELECT i.indexrelid::regclass::text
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = to_regclass(format('%I.%I', target_schema, 'VC Usage'))
       AND am.amname = 'btree' AND i.indisvalid AND i.indisready
       AND a.attname = 'id'
       AND pg_get_expr(i.indpred, i.indrelid) = '(customer_id IS NULL)'
     ORDER BY ic.relname
     LIMIT 1
$$;

-- ---- crm_native.verify_operations() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.verify_operations(target_schema text DEFAULT 'public')
RETURNS TABLE (operation text, item text, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
AS $$
DECLARE
    missing text[];
    idx text;
    vc regclass;
    cust regclass;
    keys regclass;
BEGIN
    PERFORM crm_native._require_schema('crm_native.verify_operations', target_schema);
    vc := to_regclass(format('%I.%I', target_schema, 'VC Usage'));
    cust := to_regclass(format('%I.customers', target_schema));
    keys := to_regclass(format('%I.customer_matching_keys', target_schema));

    missing := crm_native._ops_missing_native_triggers(target_schema);
    operation := 'relink_chats, merge_customers'; item := 'native triggers';
    ok := cardinality(missing) = 0;
    detail := CASE WHEN ok THEN 'installed'
                   ELSE format('missing or disabled: %s; run SELECT crm_native.install(%L)',
                               array_to_string(missing, ', '), target_schema) END;
    RETURN NEXT;

    idx := crm_native._unlinked_chats_index(target_schema);
    operation := 'relink_chats'; item := 'index on unlinked chats';
    ok := idx IS NOT NULL;
    detail := CASE WHEN ok THEN format('uses %s', idx)
                   ELSE format('none: each batch walks the primary key; on a large table with few unlinked chats, '
                               'CREATE INDEX CONCURRENTLY vc_usage_unlinked_idx ON %I.%I (id) WHERE customer_id IS NULL',
                               target_schema, 'VC Usage') END;
    RETURN NEXT;

    operation := 'search_customers'; item := 'matching keys index (company_id, key_type, normalized_value)';
    SELECT string_agg(i.indexrelid::regclass::text, ', ') INTO idx
      FROM pg_index i
     WHERE i.indrelid = keys AND i.indisvalid AND i.indpred IS NULL
       AND (SELECT array_agg(a.attname::text ORDER BY k.ord)
              FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= 3) = ARRAY['company_id', 'key_type', 'normalized_value'];
    ok := idx IS NOT NULL;
    detail := CASE WHEN ok THEN format('uses %s', idx)
                   ELSE format('none: CREATE INDEX ON %I.customer_matching_keys (company_id, key_type, normalized_value)',
                               target_schema) END;
    RETURN NEXT;

    operation := 'search_customers'; item := 'pg_trgm index on customers.customer_name';
    SELECT string_agg(i.indexrelid::regclass::text, ', ') INTO idx
      FROM pg_index i
      JOIN pg_opclass oc ON oc.oid = i.indclass[0]
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = cust AND i.indisvalid AND oc.opcname IN ('gin_trgm_ops', 'gist_trgm_ops')
       AND a.attname = 'customer_name'
       AND (i.indpred IS NULL OR pg_get_expr(i.indpred, i.indrelid) = '(deleted_at IS NULL)');
    ok := idx IS NOT NULL;
    detail := CASE WHEN ok THEN format('uses %s', idx)
                   ELSE format('none: CREATE INDEX ON %I.customers USING gin (customer_name gin_trgm_ops) '
                               'WHERE deleted_at IS NULL', target_schema) END;
    RETURN NEXT;

    -- Under row-level security only crm_native's LEAKPROOF operator class
    -- lets a name search use an index (docs/operations.md).
    operation := 'search_customers'; item := 'name index usable under row-level security';
    SELECT string_agg(i.indexrelid::regclass::text, ', ') INTO idx
      FROM pg_index i
      JOIN pg_opclass oc ON oc.oid = i.indclass[0]
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = cust AND i.indisvalid AND oc.opcname = 'gin_trgm_leakproof_ops'
       AND oc.opcnamespace = 'crm_native'::regnamespace AND a.attname = 'customer_name';
    ok := idx IS NOT NULL OR NOT coalesce((SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = cust), false);
    detail := CASE WHEN idx IS NOT NULL THEN format('uses %s', idx)
                   WHEN ok THEN 'not needed: row-level security is off on customers'
                   ELSE format('none: name searches under row-level security filter every customer of the tenant; '
                               'CREATE INDEX CONCURRENTLY idx_customers_name_trgm_leakproof ON %I.customers '
                               'USING gin (customer_name crm_native.gin_trgm_leakproof_ops) WHERE deleted_at IS NULL',
                               target_schema) END;
    RETURN NEXT;
END
$$;

-- ---- crm_native._index_columns() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._index_columns(idx oid)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
AS $$
    SELECT array_agg(pg_get_indexdef(i.indexrelid, c.n::int, false)
                     || CASE WHEN opc.opcdefault THEN '' ELSE ' ' || opc.opcname END
                     || CASE WHEN (c.opt & 1) = 1 THEN ' DESC' ELSE '' END
                     || CASE WHEN (c.opt & 1) = 1 AND (c.opt & 2) = 0 THEN ' NULLS LAST'
                             WHEN (c.opt & 1) = 0 AND (c.opt & 2) = 2 THEN ' NULLS FIRST'
                             ELSE '' END
                     ORDER BY c.n)
      FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indclass::oid[], i.indoption::int2[]) WITH ORDINALITY AS c (opclass, opt, n)
      JOIN pg_opclass opc ON opc.oid = c.opclass
     WHERE i.indexrelid = idx AND c.n <= i.indnkeyatts
$$;

-- ---- crm_native._index_signature() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._index_signature(idx oid)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
AS $$
    SELECT am.amname || ' (' || array_to_string(crm_native._index_columns(i.indexrelid), ', ') || ')'
           || coalesce(' WHERE ' || pg_get_expr(i.indpred, i.indrelid), '')
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
     WHERE i.indexrelid = idx
$$;

-- ---- crm_native._schema_indexes() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._schema_indexes(target_schema text)
RETURNS TABLE (table_name text, index_name text, indexrelid oid, relid oid, am text, columns text[],
               predicate text, signature text, is_unique boolean, is_primary boolean, is_valid boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
AS $$
    SELECT c.relname::text, ic.relname::text, i.indexrelid, i.indrelid, am.amname::text,
           crm_native._index_columns(i.indexrelid), pg_get_expr(i.indpred, i.indrelid),
           crm_native._index_signature(i.indexrelid), i.indisunique, i.indisprimary,
           i.indisvalid AND i.indisready AND i.indislive
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
     WHERE n.nspname = target_schema AND c.relkind IN ('r', 'p')
$$;

-- ---- crm_native._index_leading_with() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._index_leading_with(relid oid, cols text[], ordered boolean,
                                               must_be_unique boolean, allowed_predicate text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares deparsed text
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

-- ---- crm_native._customer_keys() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._customer_keys(name text, email text, phone text)
RETURNS TABLE (key_type text, key_value text, normalized_value text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.key_type, k.key_value, k.normalized_value
      FROM unnest(ARRAY['name', 'email', 'phone'], ARRAY[name, email, phone],
                  ARRAY[crm_native._matching_key('name', name), crm_native._matching_key('email', email),
                        crm_native._matching_key('phone', phone)]) AS k (key_type, key_value, normalized_value)
     WHERE k.normalized_value IS NOT NULL
$$;

-- ---- crm_native._search_keys() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._search_keys(q text, OUT email_key text, OUT phone_key text, OUT name_key text,
                                        OUT try_names boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    is_email boolean := strpos(q, '@') > 0;
BEGIN
    email_key := crm_native._matching_key('email', q);
    phone_key := CASE WHEN NOT is_email THEN crm_native._matching_key('phone', q) END;
    try_names := NOT is_email AND NOT (phone_key IS NOT NULL AND q !~ '[[:alpha:]]');
    name_key := CASE WHEN try_names THEN crm_native._matching_key('name', q) END;
END
$$;

-- crm_native.install() / uninstall() / status(): attach the native triggers
-- registered in crm_native.native_trigger to an application schema, in place
-- of the application's own triggers, and put those back. See docs/install.md.
--
-- The functions are SECURITY INVOKER: they create and drop triggers with the
-- caller's rights (CREATE TRIGGER needs ownership of the tables), so calling
-- them grants nothing. They pin search_path to pg_catalog, pg_temp: all the
-- names they build are schema-qualified, and pg_get_triggerdef() then writes
-- fully qualified definitions, which uninstall() replays under the same path.

-- What the triggers need from the application schema (docs/contract.md, "The application schema"):
-- the tables and the columns that some trigger reads or writes by name, with
-- the types it accepts. install() checks every row and reports all that is
-- missing in one error. The list is the one the triggers themselves check
-- (src/pg/store.cpp): a column install() accepts is a column the triggers
-- accept, with the same types.
CREATE FUNCTION crm_native.required_columns()
RETURNS TABLE (ordinal int, table_name text, column_name text, types regtype[])
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_required_columns';

CREATE VIEW crm_native.required_column AS
SELECT ordinal, table_name, column_name, types FROM crm_native.required_columns();
-- the triggers' column list, nothing of a tenant (docs/install.md)
GRANT SELECT ON crm_native.required_column TO PUBLIC;

-- The application triggers install() replaced, as pg_get_triggerdef() wrote
-- them (fully qualified), with their enabled state and comment, so that
-- uninstall() can put them back exactly. Dumped by pg_dump with the data.
CREATE TABLE crm_native.replaced_trigger (
    schema_name   text NOT NULL,
    table_name    text NOT NULL,
    trigger_name  text NOT NULL,
    definition    text NOT NULL,      -- pg_get_triggerdef(oid), search_path = pg_catalog
    enabled       "char" NOT NULL,    -- pg_trigger.tgenabled: O, D, R or A
    comment       text,               -- COMMENT ON TRIGGER, if any
    function_name text NOT NULL,      -- the function it called (information only)
    replaced_at   timestamptz NOT NULL DEFAULT now(),
    -- written by install() from the catalogs (0.8.0). Records from earlier
    -- versions (whose docs had table owners granted write access) or
    -- restored from their dumps are false until a superuser has checked
    -- them: uninstall() does not replay them before.
    verified      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (schema_name, table_name, trigger_name)
);
SELECT pg_catalog.pg_extension_config_dump('crm_native.replaced_trigger', '');

-- The schemas install() put the native triggers on. uninstall() refuses a
-- schema with native triggers that is in neither registry (renamed after
-- install(), or restored from a dump of the schema alone, which leaves out
-- crm_native's records): it would drop them and restore nothing. Dumped by
-- pg_dump with the data.
CREATE TABLE crm_native.installed_schema (
    schema_name  text PRIMARY KEY,
    installed_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('crm_native.installed_schema', '');

-- Both registries are readable by every role (what they hold, the catalogs
-- show anyway) and written only by the extension's owner: uninstall()
-- replays the recorded definitions, often as a superuser before DROP
-- EXTENSION, so no other role may write them (before 0.8.0 table owners were
-- granted write access, and could make uninstall() run any SQL). install()
-- and uninstall() write them through the SECURITY DEFINER functions below,
-- which record only what the catalogs say and forget only what no native
-- trigger stands in for.
GRANT SELECT ON crm_native.replaced_trigger, crm_native.installed_schema TO PUBLIC;

-- What would let a role other than the extension's owner change the
-- registries: a grant to write them or to put triggers on them (made by
-- hand, or restored from a dump of 0.7.0, whose docs asked for write
-- access), and any trigger on them, which would run as the extension's
-- owner when install() and uninstall() write them. NULL when nothing.
-- uninstall() refuses while there is anything; the writers below refuse
-- while there is a trigger.
CREATE FUNCTION crm_native._registry_problems()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(problem, '; ' ORDER BY problem)
      FROM (-- every role, whatever gives it the privilege (a grant to it or
            -- to a role it is a member of, PUBLIC, pg_write_all_data)
            SELECT format('%s may %s %s', quote_ident(r.rolname), lower(p.privilege), c.oid::regclass) AS problem
              FROM pg_class c
              CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('TRIGGER')) AS p (privilege)
              JOIN pg_roles r ON NOT r.rolsuper AND r.oid <> c.relowner AND r.oid >= 16384  -- not pg_write_all_data itself: its members
             WHERE c.oid IN ('crm_native.replaced_trigger'::regclass, 'crm_native.installed_schema'::regclass)
               AND has_table_privilege(r.oid, c.oid, p.privilege)
            UNION ALL
            SELECT format('%s may %s %s', quote_ident(r.rolname), lower(p.privilege), c.oid::regclass)
              FROM pg_class c
              CROSS JOIN (VALUES ('INSERT'), ('UPDATE')) AS p (privilege)
              JOIN pg_roles r ON NOT r.rolsuper AND r.oid <> c.relowner AND r.oid >= 16384  -- not pg_write_all_data itself: its members
             WHERE c.oid IN ('crm_native.replaced_trigger'::regclass, 'crm_native.installed_schema'::regclass)
               AND NOT has_table_privilege(r.oid, c.oid, p.privilege)
               AND has_any_column_privilege(r.oid, c.oid, p.privilege)
            UNION ALL
            -- a NOINHERIT member of a role that holds the privilege (a
            -- grantee, or pg_write_all_data) gets it with SET ROLE
            SELECT format('%s may %s %s as %s', quote_ident(r.rolname), lower(p.privilege), c.oid::regclass, quote_ident(x.rolname))
              FROM pg_class c
              CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('TRIGGER')) AS p (privilege)
              JOIN pg_roles x ON NOT x.rolsuper AND x.oid <> c.relowner
                             AND (x.rolname = 'pg_write_all_data'
                                  OR x.oid IN (SELECT a.grantee FROM aclexplode(c.relacl) a
                                               UNION
                                               SELECT a.grantee FROM pg_attribute att, aclexplode(att.attacl) a
                                                WHERE att.attrelid = c.oid))
              JOIN pg_roles r ON NOT r.rolsuper AND r.oid <> c.relowner AND r.oid >= 16384 AND r.oid <> x.oid
                             AND pg_has_role(r.oid, x.oid, 'MEMBER')
             WHERE c.oid IN ('crm_native.replaced_trigger'::regclass, 'crm_native.installed_schema'::regclass)
               AND NOT has_table_privilege(r.oid, c.oid, p.privilege)
               AND (has_table_privilege(x.oid, c.oid, p.privilege)
                    OR p.privilege IN ('INSERT', 'UPDATE') AND has_any_column_privilege(x.oid, c.oid, p.privilege))
            UNION ALL
            SELECT format('trigger %I on %s', t.tgname, t.tgrelid::regclass)
              FROM pg_trigger t
             WHERE t.tgrelid IN ('crm_native.replaced_trigger'::regclass, 'crm_native.installed_schema'::regclass)
               AND NOT t.tgisinternal) p
$$;

-- The SECURITY DEFINER writers below write the registries as the
-- extension's owner: a trigger on them would run as that owner.
CREATE FUNCTION crm_native._require_registries_untriggered()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_triggers text;
BEGIN
    SELECT string_agg(format('%I on %s', t.tgname, t.tgrelid::regclass), ', ') INTO found_triggers
      FROM pg_trigger t
     WHERE t.tgrelid IN ('crm_native.replaced_trigger'::regclass, 'crm_native.installed_schema'::regclass)
       AND NOT t.tgisinternal;
    IF found_triggers IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native: triggers on crm_native''s registries: %', found_triggers
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'install() and uninstall() write the registries as the extension''s owner; such a trigger would run as that owner.',
                  HINT = 'A superuser drops them (and revokes TRIGGER on the registries).';
    END IF;
END
$$;

-- The registered native triggers on target_schema's CRM tables (partitions
-- elsewhere do not count: they belong to their table's schema), each with
-- the application trigger it stands in for. The one answer to "is this
-- schema installed" and "does a native trigger stand in for this record",
-- for install(), uninstall(), the registry writers and the upgrade.
CREATE FUNCTION crm_native._native_stand_ins(target_schema text)
RETURNS TABLE (table_name text, replaces text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nt.table_name, nt.replaces
      FROM crm_native.native_trigger nt
      JOIN pg_namespace n ON n.nspname = target_schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = nt.table_name
      JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
      JOIN pg_proc p ON p.oid = t.tgfoid AND p.pronamespace = 'crm_native'::regnamespace
$$;

CREATE FUNCTION crm_native._has_native_triggers(target_schema text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM crm_native._native_stand_ins(target_schema))
$$;

-- Records the application trigger trigger_oid as install() is about to drop
-- it: everything from the catalogs (pg_get_triggerdef() under search_path
-- pg_catalog: fully qualified), and only a trigger the registry replaces
-- that does not call crm_native. Calling it yourself records the truth about
-- an existing trigger, which install() would record anyway.
CREATE FUNCTION crm_native._record_replaced_trigger(trigger_oid oid)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- uninstall() compares it with pg_get_triggerdef()
AS $$
    SELECT crm_native._require_registries_untriggered();
    INSERT INTO crm_native.replaced_trigger
           (schema_name, table_name, trigger_name, definition, enabled, comment, function_name, verified)
    SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled,
           obj_description(t.oid, 'pg_trigger'), p.oid::regprocedure::text, true
      FROM pg_trigger t
      JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE t.oid = trigger_oid AND NOT t.tgisinternal
       AND p.pronamespace <> 'crm_native'::regnamespace
       AND EXISTS (SELECT FROM crm_native.native_trigger nt WHERE nt.replaces = t.tgname AND nt.table_name = c.relname)
    ON CONFLICT (schema_name, table_name, trigger_name) DO UPDATE
        SET definition = excluded.definition, enabled = excluded.enabled, comment = excluded.comment,
            function_name = excluded.function_name, replaced_at = excluded.replaced_at, verified = true
$$;

-- Forgets a record once no native trigger stands in for it on its table
-- (uninstall() has restored it, the table is gone, or the record is stale):
-- nobody can make uninstall() forget the triggers of an installed schema.
CREATE FUNCTION crm_native._forget_replaced_trigger(target_schema text, tbl text, trg text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm_native._require_registries_untriggered();
    DELETE FROM crm_native.replaced_trigger rt
     WHERE rt.schema_name = target_schema AND rt.table_name = tbl AND rt.trigger_name = trg
       AND NOT EXISTS (SELECT FROM crm_native._native_stand_ins(rt.schema_name) s
                        WHERE s.table_name = rt.table_name AND s.replaces = rt.trigger_name)
$$;

-- install() records its schema once the native triggers are on it;
-- uninstall() forgets it once they are gone.
CREATE FUNCTION crm_native._record_installed_schema(target_schema text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm_native._require_registries_untriggered();
    INSERT INTO crm_native.installed_schema (schema_name)
    SELECT target_schema WHERE crm_native._has_native_triggers(target_schema)
    ON CONFLICT (schema_name) DO NOTHING
$$;

CREATE FUNCTION crm_native._forget_installed_schema(target_schema text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm_native._require_registries_untriggered();
    DELETE FROM crm_native.installed_schema s
     WHERE s.schema_name = target_schema AND NOT crm_native._has_native_triggers(target_schema)
$$;

-- The writers are keyed by schema name, and a schema name can be freed
-- (renamed, dropped) and taken by another role: any role that may call
-- them could then put its own record under another application's name, or
-- forget that application's records (found by an independent review). So
-- nobody but the extension's owner (a superuser) may call them; a superuser
-- grants EXECUTE to the table owners it trusts with install() and
-- uninstall() (docs/install.md, "Security decisions").
REVOKE ALL ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                       crm_native._record_installed_schema(text), crm_native._forget_installed_schema(text)
  FROM PUBLIC;

-- Creates the recorded application trigger rel.trg from its definition:
-- only if it is exactly one CREATE TRIGGER of that name on that table, and
-- with the rights of the table's owner (src/pg/trigger_restore.cpp).
CREATE FUNCTION crm_native._restore_trigger(rel regclass, trg text, definition text)
RETURNS void
AS 'MODULE_PATHNAME', 'crm_restore_trigger'
LANGUAGE C STRICT VOLATILE;

-- What install() requires of the CRM tables beyond their columns and types
-- (missing_objects() lists these problems too, verify_schema() reports them
-- with a fix): the columns that are never NULL, a unique chat id, a chat
-- table without inheritance children, and a customer_metrics without INSERT
-- or UPDATE rules.
CREATE FUNCTION crm_native._schema_requirements(target_schema text)
RETURNS TABLE (ordinal int, object text, problem text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH cols AS (
        SELECT r.ordinal, r.table_name, r.column_name, c.oid AS relid, c.relkind, a.attnum, a.attnotnull
          FROM crm_native.required_column r
          JOIN pg_namespace n ON n.nspname = target_schema
          JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name AND c.relkind IN ('r', 'p')
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = r.column_name AND a.attnum > 0 AND NOT a.attisdropped
    )
    -- never NULL: the chat id tells a chat from the others; a chat and a
    -- customer belong to one company (a chat without one was stored
    -- unlinked, and could name any company's customer)
    SELECT c.ordinal, format('%I.%I', c.table_name, c.column_name),
           format('column %I.%I must be NOT NULL (%s)', c.table_name, c.column_name, why.reason),
           format('ALTER TABLE %I.%I ALTER COLUMN %I SET NOT NULL', target_schema, c.table_name, c.column_name)
      FROM cols c
      JOIN (VALUES ('VC Usage', 'id', 'the chats'' primary key'),
                   ('VC Usage', 'company_id', 'the customer sync matches and creates customers within the chat''s company'),
                   ('customers', 'company_id', 'a customer belongs to one company')) AS why (table_name, column_name, reason)
        ON why.table_name = c.table_name AND why.column_name = c.column_name
     WHERE NOT c.attnotnull
    UNION ALL
    -- unique: the metrics triggers pair an updated chat's old and new
    -- versions by id (duplicates counted a chat twice; found by an
    -- independent tester). A valid, immediate unique index or primary key on
    -- id, to which only the partition key's columns and company_id may be
    -- added: a partitioned table's key must include its partition key, a
    -- Citus table's its distribution column (company_id). The ids must then
    -- still be unique (docs/contract.md).
    SELECT c.ordinal, format('%I.%I', c.table_name, c.column_name),
           format('column %I.%I must be unique: no valid, immediate unique index or primary key on it '
                  '(with at most the partition key or company_id besides; the metrics triggers pair the old '
                  'and new versions of an updated chat by it)',
                  c.table_name, c.column_name),
           CASE WHEN c.relkind = 'r'
                THEN format('ALTER TABLE %I.%I ADD UNIQUE (%I)', target_schema, c.table_name, c.column_name) END
      FROM cols c
     WHERE c.table_name = 'VC Usage' AND c.column_name = 'id'
       AND NOT EXISTS (
           SELECT FROM pg_index i
            CROSS JOIN LATERAL (SELECT (i.indkey::int2[])[0:i.indnkeyatts - 1] AS keys) k
            WHERE i.indrelid = c.relid AND i.indisunique AND i.indisvalid AND i.indimmediate
              AND i.indpred IS NULL AND c.attnum = ANY (k.keys)
              AND NOT EXISTS (
                  SELECT FROM unnest(k.keys) key_column
                   WHERE key_column <> c.attnum
                     AND key_column NOT IN (SELECT a.attnum FROM pg_attribute a
                                             WHERE a.attrelid = c.relid AND a.attname = 'company_id')
                     AND key_column NOT IN (SELECT unnest(pt.partattrs::int2[]) FROM pg_partitioned_table pt
                                             WHERE pt.partrelid = c.relid)))
    UNION ALL
    -- A plain table's inheritance children: a row written into a child fires
    -- none of the chat table's triggers, yet an UPDATE or DELETE through the
    -- chat table puts the child's rows in its transition tables (the metrics
    -- went negative; found by an independent tester). Partitions are fine.
    SELECT c.ordinal, format('%I', c.table_name),
           format('table %I has inheritance children that are not partitions (%s): the triggers do not see the rows '
                  'written into them, but see them updated or deleted through %I',
                  c.table_name, string_agg(i.inhrelid::regclass::text, ', ' ORDER BY i.inhrelid::regclass::text),
                  c.table_name),
           string_agg(format('ALTER TABLE %s NO INHERIT %I.%I', i.inhrelid::regclass, target_schema, c.table_name), '; '
                      ORDER BY i.inhrelid::regclass::text)
      FROM cols c
      JOIN pg_inherits i ON i.inhparent = c.relid
     WHERE c.table_name = 'VC Usage' AND c.column_name = 'id' AND c.relkind = 'r'
     GROUP BY c.ordinal, c.table_name
    UNION ALL
    -- INSERT or UPDATE rules on customer_metrics: the metrics triggers write
    -- it with INSERT ... ON CONFLICT, which PostgreSQL refuses on a table
    -- with such rules, so every chat of a linked customer would fail. A rule
    -- added after install() too (verify_schema(), health()).
    SELECT min(c.ordinal), format('%I', c.table_name),
           format('table %I has INSERT or UPDATE rules (%s): the metrics triggers write it with INSERT ... ON '
                  'CONFLICT, which PostgreSQL refuses on a table with such rules (an AFTER INSERT OR UPDATE ... '
                  'FOR EACH ROW trigger can do what a rule did)',
                  c.table_name, string_agg(DISTINCT quote_ident(rw.rulename), ', ')),
           string_agg(DISTINCT format('DROP RULE %I ON %I.%I', rw.rulename, target_schema, c.table_name), '; ')
      FROM cols c
      JOIN pg_rewrite rw ON rw.ev_class = c.relid AND rw.ev_type IN ('2', '3')
     WHERE c.table_name = 'customer_metrics'
     GROUP BY c.table_name
$$;

-- The tables and columns target_schema lacks, or has with another type, in
-- the words of install()'s error message: 'table customer_events', 'column
-- customers.merged_into_customer_id', 'column customers.id has type text,
-- expected uuid'. What every function that reads the schema requires
-- (_require_crm_schema): a view or a column of another type in their place
-- could run the schema owner's code.
CREATE FUNCTION crm_native._missing_columns(target_schema text)
RETURNS TABLE (ordinal int, problem text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH tables AS (
        SELECT t.table_name, min(t.ordinal) AS ordinal, c.oid AS relid, c.relkind
        FROM crm_native.required_column t
        LEFT JOIN pg_namespace n ON n.nspname = target_schema
        LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
        GROUP BY t.table_name, c.oid, c.relkind
    )
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
                            format_type(a.atttypid, NULL), array_to_string(r.types, ' or '))
           END
    FROM crm_native.required_column r
    JOIN tables t ON t.table_name = r.table_name AND t.relid IS NOT NULL AND t.relkind IN ('r', 'p')
    LEFT JOIN pg_attribute a ON a.attrelid = t.relid AND a.attname = r.column_name
                            AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.attnum IS NULL OR NOT (a.atttypid::regtype = ANY (r.types))
$$;

-- Everything install() needs that target_schema lacks: the tables and
-- columns (_missing_columns), then the schema's requirements
-- (_schema_requirements). Empty when install() can attach the triggers.
CREATE FUNCTION crm_native.missing_objects(target_schema text DEFAULT 'public')
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(p.problem ORDER BY p.ordinal, p.problem), '{}')
      FROM (SELECT m.ordinal, m.problem FROM crm_native._missing_columns(target_schema) m
            UNION ALL
            SELECT q.ordinal, q.problem FROM crm_native._schema_requirements(target_schema) q) p
$$;

-- Each trigger on the tables crm_native attaches to, and what implements it.
CREATE FUNCTION crm_native.status(target_schema text DEFAULT 'public')
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

-- Locks the tables that carry registered triggers (their partitions too) in
-- ACCESS EXCLUSIVE mode, the lock DROP TRIGGER takes: taking a weaker one
-- first and DROP TRIGGER's later deadlocked with any application
-- transaction that had read a table and then wrote it (found by an
-- independent review). Concurrent install()/uninstall() calls run one after
-- the other. In the order a chat written through "VC Usage" takes the
-- tables, "VC Usage" and then customers, so that no such chat in flight can
-- deadlock with it (in the collation's order, customers came first under
-- ICU or en_US, and chats were rolled back; found by an independent
-- tester). It waits like any DDL (the caller's lock_timeout bounds each
-- wait, and transactions that come later queue behind it). An application
-- transaction that uses customers and then writes a chat, or a chat written
-- straight into a partition, can still deadlock with it, as with any DDL on
-- these tables; when PostgreSQL rolls this call back for it, it tries again
-- (twice), since the application's transaction has then gone on. (Rounds
-- that waited for one table and for the other only briefly, tried instead,
-- moved the deadlock to the chats queued behind them; found by an
-- independent review.) The caller must own the tables and their
-- partitions: checked first, so that another role does not queue every
-- writer behind its lock request.
CREATE FUNCTION crm_native._lock_trigger_tables(target_schema text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tables text;
    not_owned text;
    deadlocks int := 0;
BEGIN
    SELECT string_agg(format('%I.%I', target_schema, t.table_name), ', '
                      ORDER BY t.table_name <> 'VC Usage', t.table_name COLLATE "C")
      INTO tables
      FROM (SELECT DISTINCT nt.table_name FROM crm_native.native_trigger nt) t
     WHERE to_regclass(format('%I.%I', target_schema, t.table_name)) IS NOT NULL;
    -- the tables and their partitions at any depth (read from pg_inherits,
    -- which locks nothing)
    WITH RECURSIVE tree(relid) AS (
        SELECT to_regclass(format('%I.%I', target_schema, nt.table_name))::oid
          FROM crm_native.native_trigger nt
         WHERE to_regclass(format('%I.%I', target_schema, nt.table_name)) IS NOT NULL
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid
    )
    SELECT string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid::regclass::text)
      INTO not_owned
      FROM tree JOIN pg_class c ON c.oid = tree.relid
     WHERE NOT pg_has_role(c.relowner, 'USAGE');
    IF not_owned IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native: must be owner of %', not_owned
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'install() and uninstall() drop and create triggers on these tables.';
    END IF;
    IF tables IS NULL THEN
        RETURN;
    END IF;
    LOOP
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tables);
            RETURN;
        EXCEPTION
            WHEN lock_not_available THEN
                RAISE EXCEPTION 'crm_native: could not lock % within lock_timeout (%)',
                                tables, current_setting('lock_timeout')
                    USING ERRCODE = 'lock_not_available',
                          DETAIL = 'install() and uninstall() change the triggers of these tables: they wait until '
                                   'no open transaction uses them.',
                          HINT = 'Look for long or idle transactions on those tables (pg_locks, pg_stat_activity, '
                                 'pg_prepared_xacts), or call it again with a longer lock_timeout.';
            WHEN deadlock_detected THEN
                deadlocks := deadlocks + 1;
                IF deadlocks > 2 THEN
                    RAISE;
                END IF;
        END;
    END LOOP;
END
$$;

-- ALTER TABLE ... ENABLE/DISABLE TRIGGER for a pg_trigger.tgenabled value.
CREATE FUNCTION crm_native._set_trigger_enabled(rel regclass, trg text, enabled "char")
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

-- The partitions, at any depth, of target_schema.tbl that the triggers
-- registered on_partitions go on: a statement fires the statement triggers of
-- the table it names only. None for a table that is not partitioned, and none
-- on Citus (partitioned distributed tables are not supported, docs/citus.md).
-- With below (a partition of it): only below and the partitions under it;
-- pg_partition_tree() locks the tree it walks (AccessShareLock), so the
-- event trigger, which passes the table a DDL command just created or
-- attached, locks nothing else.
CREATE FUNCTION crm_native._partitions(target_schema text, tbl text, below regclass DEFAULT NULL)
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

-- Whether trigger `trigger` on rel is defined exactly as this version
-- registers nt (on a partition of nt's table: with the argument
-- 'partition'): its events, UPDATE OF columns, timing, level, transition
-- tables, function and arguments, as pg_get_triggerdef() writes them. The
-- registry's texts are written the way pg_get_triggerdef() writes a
-- definition (sql/install.sql checks that each one reads back), so a
-- trigger an older version created with another definition (a database
-- restored from an older version's dump keeps it) reads as different. A
-- WHEN condition is compared by its presence only: pg_get_triggerdef()
-- writes it with the casts the column's type needs (a varchar
-- lifecycle_stage gets ::text), which the registry cannot know.
CREATE FUNCTION crm_native._trigger_as_registered(trigger oid, nt crm_native.native_trigger, rel regclass,
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

-- Creates the registered trigger nt on rel (on a partition of nt's table,
-- with the argument 'partition') unless it is there; true when created.
-- Another trigger of that name is an error: crm_native replaces the
-- application's triggers by name only where the registry says so. A native
-- one defined otherwise (other arguments: a table that was a partition and
-- is now the table, or the other way round; other events or columns: an
-- older version's, restored from its dump) is created again, keeping its
-- enabled state.
CREATE FUNCTION crm_native._create_native_trigger(nt crm_native.native_trigger, rel regclass, on_partition boolean)
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

-- Whether a native trigger's arguments (pg_trigger.tgnargs, tgargs) are the
-- ones install() gives it: none on the table it attaches to, 'partition' on
-- a partition of it.
CREATE FUNCTION crm_native._trigger_args_are(nargs int2, args bytea, on_partition boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN on_partition THEN nargs = 1 AND args = decode('706172746974696f6e00', 'hex')  -- 'partition\0'
                ELSE nargs = 0 END
$$;

-- Triggers install() put on a partition (argument 'partition') that no
-- longer sit below a table with the same trigger function attached without
-- arguments: their table was detached (itself, or a partitioned ancestor of
-- it) or is being detached CONCURRENTLY. They do nothing there (the C side
-- applies the same rule), and they would keep DROP EXTENSION from working.
-- In any schema: where they came from is no longer recorded anywhere.
CREATE FUNCTION crm_native._left_partition_triggers()
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
     -- a table before its partitions: dropping its trigger drops their clones
     ORDER BY (SELECT count(*) FROM pg_partition_ancestors(t.tgrelid)), t.tgrelid::regclass::text, t.tgname
$$;

-- Puts the registered trigger nt (on_partitions) on every partition of
-- target_schema's nt.table_name that lacks it (only those in below's
-- partition tree, below included, when below is given), in the enabled
-- state of the one on that table. install() and the event trigger of
-- 55_partition_triggers.sql call it.
CREATE FUNCTION crm_native._add_partition_triggers(target_schema text, nt crm_native.native_trigger,
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

-- The registry writers are the extension owner's: a table owner who runs
-- install() or uninstall() needs them granted (docs/install.md). Said by
-- name, with the GRANT, instead of PostgreSQL's "permission denied for
-- function _forget_replaced_trigger" halfway through (found by an
-- independent tester).
CREATE FUNCTION crm_native._require_registry_writers(fn text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(f, ', ' ORDER BY f) INTO missing
      FROM unnest(ARRAY['crm_native._record_replaced_trigger(oid)',
                        'crm_native._forget_replaced_trigger(text, text, text)',
                        'crm_native._record_installed_schema(text)',
                        'crm_native._forget_installed_schema(text)']) f
     WHERE NOT has_function_privilege(f, 'EXECUTE');
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '%: role % may not write crm_native''s registries', fn, current_user
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('It lacks EXECUTE on %s.', missing),
                  HINT = format('Run it as a superuser, or have one grant the table owner the registry writers '
                                '(docs/install.md, "Security decisions"): GRANT EXECUTE ON FUNCTION %s TO %I;',
                                missing, current_user);
    END IF;
END
$$;

CREATE FUNCTION crm_native.install(target_schema text DEFAULT 'public')
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
    PERFORM crm_native._require_registry_writers('crm_native.install');
    missing := crm_native.missing_objects(target_schema);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'crm_native.install: schema "%" lacks what the native triggers need: %', target_schema,
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
                PERFORM crm_native._forget_replaced_trigger(target_schema, r.tbl, r.replaces);
            END IF;
            CONTINUE;
        END IF;
        PERFORM crm_native._record_replaced_trigger(app.oid);
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
    PERFORM crm_native._record_installed_schema(target_schema);

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
         ORDER BY t.tgrelid::regclass::text, t.tgname
    LOOP
        RAISE WARNING 'crm_native.install: trigger "%" on % is ENABLE %, but logical replication applies changes without firing statement triggers',
                      r.tgname, r.rel, CASE r.tgenabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END
            USING DETAIL = 'On a subscriber, replicated chats are linked by the row triggers, but customer_metrics is not maintained.',
                  HINT = 'Replicate customer_metrics from the publisher instead, or run crm_native.rebuild_metrics() on the subscriber (docs/metrics.md, "Logical replication").';
    END LOOP;

    -- customer_metrics is updated in place by each chat's delta: a BEFORE
    -- row trigger of the application that skips or changes its rows leaves
    -- them wrong from then on (docs/contract.md, "Deliberate differences").
    FOR r IN
        SELECT t.tgname, t.tgrelid::regclass AS rel
          FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relname = 'customer_metrics'
           AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
           AND NOT t.tgisinternal AND t.tgenabled <> 'D'
           AND t.tgtype::int & 1 = 1  -- FOR EACH ROW
           AND t.tgtype::int & 2 = 2  -- BEFORE
           AND t.tgtype::int & (4 | 16) <> 0  -- INSERT or UPDATE
         ORDER BY t.tgname
    LOOP
        RAISE WARNING 'crm_native.install: BEFORE trigger "%" on % may skip or change the metrics rows the native triggers write',
                      r.tgname, r.rel
            USING DETAIL = 'The metrics triggers add each chat''s delta to the stored row: a value the trigger changed is carried on, and a skipped write leaves the row behind.',
                  HINT = 'Make it an AFTER trigger, or check with crm_native.verify_metrics() (docs/contract.md, "Deliberate differences").';
    END LOOP;

    -- A generated column the customer sync reads has no value yet in a
    -- BEFORE trigger: the sync sees NULL there, as the plpgsql trigger did.
    FOR r IN
        SELECT a.attname, a.attrelid::regclass AS rel
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relname = 'VC Usage'
           AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = target_schema)
           AND a.attname IN ('company_id', 'customer_id', 'customer_name', 'customer_email', 'customer_phone', 'session_id')
           AND a.attgenerated <> '' AND NOT a.attisdropped
         ORDER BY a.attnum
    LOOP
        RAISE WARNING 'crm_native.install: column % of % is generated: the customer sync reads it as NULL',
                      r.attname, r.rel
            USING DETAIL = 'The sync is a BEFORE trigger, and a generated column is computed after BEFORE triggers, as the plpgsql trigger saw it too.',
                  HINT = 'Have the application write the value into the column itself if chats should be matched by it.';
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

CREATE FUNCTION crm_native.uninstall(target_schema text DEFAULT 'public')
RETURNS TABLE (trigger_name text, table_name text, implementation text, function text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off  -- compares pg_get_triggerdef() with the records
SET crm_native.attach_partition_triggers = off  -- it places the triggers itself
AS $$
#variable_conflict use_column
DECLARE
    r record;
    rel regclass;
    current_def text;
    orphaned text;
    problems text;
    stood_in_for text[];
    dropped int := 0;
    restored int := 0;
    busy_tables regclass[] := '{}';  -- tables left with triggers by DETACH that were locked by others
BEGIN
    PERFORM crm_native._require_schema('crm_native.uninstall', target_schema);
    PERFORM crm_native._require_registry_writers('crm_native.uninstall');
    -- The records are replayed as trusted: nobody but the extension's owner
    -- may have written them.
    problems := crm_native._registry_problems();
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native.uninstall: crm_native''s registries are open to other roles: %', problems
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'uninstall() replays the recorded trigger definitions; such a role could have rewritten them. Nothing was changed.',
                  HINT = 'A superuser revokes those privileges (REVOKE ALL ON crm_native.replaced_trigger, '
                         'crm_native.installed_schema FROM ... CASCADE; GRANT SELECT ON both TO PUBLIC), drops '
                         'those triggers, and checks the records against the application''s migrations.';
    END IF;
    -- Records nobody has vouched for (written before 0.8.0, when table
    -- owners could write the registry, or restored from such a dump) are
    -- not replayed: a role could have turned an AFTER trigger into a BEFORE
    -- trigger that drops every row, added WHEN (false), or a WHEN clause
    -- that runs any SQL as text (query_to_xml), which no dependency shows.
    SELECT string_agg(format('%I on %I.%I', rt.trigger_name, rt.schema_name, rt.table_name), ', ') INTO problems
      FROM crm_native.replaced_trigger rt
     WHERE rt.schema_name = target_schema AND NOT rt.verified;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native.uninstall: records not yet checked: %', problems
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'They were written before 0.8.0 (or restored from a dump of it), when other roles could write '
                           'crm_native.replaced_trigger. Nothing was changed.',
                  HINT = format('A superuser compares each definition with the application''s migrations '
                                '(SELECT trigger_name, definition FROM crm_native.replaced_trigger WHERE schema_name = %L), '
                                'corrects any that differ, then runs UPDATE crm_native.replaced_trigger SET verified = true '
                                'WHERE schema_name = %L.', target_schema, target_schema);
    END IF;
    -- The records name their schema. A schema with native triggers and no
    -- record of install() under its name (renamed after install(), or
    -- restored from a dump of the schema alone) would lose its native
    -- triggers and get nothing back: refuse.
    IF NOT EXISTS (SELECT FROM crm_native.installed_schema s WHERE s.schema_name = target_schema)
       AND NOT EXISTS (SELECT FROM crm_native.replaced_trigger rt WHERE rt.schema_name = target_schema)
       AND crm_native._has_native_triggers(target_schema) THEN
        SELECT string_agg(DISTINCT quote_ident(known.schema_name), ', ') INTO orphaned
          FROM (SELECT s.schema_name FROM crm_native.installed_schema s
                UNION SELECT rt.schema_name FROM crm_native.replaced_trigger rt) known
         WHERE to_regnamespace(quote_ident(known.schema_name)) IS NULL;
        RAISE EXCEPTION 'crm_native.uninstall: schema % has native triggers, but no record of install() under that name',
                        quote_ident(target_schema)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'uninstall() puts back the application triggers install() recorded under the schema''s name; '
                           'here it would drop the native triggers and restore nothing. '
                           || CASE WHEN orphaned IS NOT NULL
                                   THEN format('Records name schemas that no longer exist: %s (renamed?). ', orphaned)
                                   ELSE 'Restored from a dump of the schema alone (pg_dump -n leaves out crm_native''s records)? ' END
                           || 'Nothing was changed.',
                  HINT = 'Renamed after install(): rename it back, call uninstall(), and rename it again. '
                         'To drop the native triggers and restore nothing, a superuser first runs '
                         || format('INSERT INTO crm_native.installed_schema (schema_name) VALUES (%L).', target_schema);
    END IF;
    -- A table renamed after install(): its native triggers are found under
    -- another name, and the records name the old one. uninstall() would
    -- leave the native triggers there and forget the application triggers
    -- recorded for the old name (found by an independent tester): refuse.
    -- (The triggers install() put on the table itself: no clone on a
    -- partition, no 'partition' argument. The table may itself be a
    -- partition of another schema's table.)
    SELECT string_agg(DISTINCT format('%I (now %s)', nt.table_name, t.tgrelid::regclass), ', ') INTO orphaned
      FROM crm_native.native_trigger nt
      JOIN pg_trigger t ON t.tgname = nt.trigger_name AND NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgnargs = 0
      JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_proc p ON p.oid = t.tgfoid AND p.pronamespace = 'crm_native'::regnamespace
     WHERE c.relnamespace = to_regnamespace(quote_ident(target_schema))
       AND c.relname <> nt.table_name
       AND to_regclass(format('%I.%I', target_schema, nt.table_name)) IS NULL;
    IF orphaned IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native.uninstall: tables of schema % were renamed after install(): %',
                        quote_ident(target_schema), orphaned
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'The records name the tables as install() found them: uninstall() would leave the native '
                           'triggers on the renamed tables and restore nothing there. Nothing was changed.',
                  HINT = 'Rename them back, call uninstall(), and rename them again.';
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
    --    on partitions too, and note which application triggers they stood
    --    in for: only those are put back (a record nothing stands in for is
    --    stale, or was planted for a schema of that name before it existed).
    SELECT coalesce(array_agg(format('%I.%I', s.table_name, s.replaces)), '{}') INTO stood_in_for
      FROM crm_native._native_stand_ins(target_schema) s;
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
        dropped := dropped + 1;
    END LOOP;
    -- 1b. Partition triggers DETACH left behind, in any schema. Other
    --     roles' tables: whatever stops a drop there (a lock held, a clone
    --     its parent's trigger requires, no privilege) is a warning, never
    --     the uninstall() failing or hanging (found by an independent
    --     review). Such a table is locked only if it is free (NOWAIT): a
    --     wait for it while holding the CRM tables deadlocked with a
    --     transaction that had written it and then wrote a chat, and that
    --     transaction was rolled back (found by an independent review).
    FOR r IN
        SELECT l.trigger_name AS tgname, l.rel FROM crm_native._left_partition_triggers() l
    LOOP
        CONTINUE WHEN r.rel = ANY (busy_tables);
        BEGIN
            EXECUTE format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE NOWAIT', r.rel);
            EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
        EXCEPTION WHEN undefined_object THEN
            NULL;  -- gone with its parent's, dropped just before
        WHEN OTHERS THEN
            IF SQLSTATE = '55P03' THEN
                busy_tables := busy_tables || r.rel;
            END IF;
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
        IF rel IS NOT NULL AND NOT format('%I.%I', r.table_name, r.trigger_name) = ANY (stood_in_for) THEN
            RAISE WARNING 'crm_native.uninstall: trigger "%" on % is not restored: no native trigger stood in for it',
                          r.trigger_name, rel
                USING DETAIL = format('The recorded definition was: %s', r.definition),
                      HINT = 'A record is replayed only where install() put a native trigger in place of it. '
                             'Create the trigger by hand if the application needs it.';
        ELSIF rel IS NULL THEN
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
                PERFORM crm_native._restore_trigger(rel, r.trigger_name, r.definition);
                PERFORM crm_native._set_trigger_enabled(rel, r.trigger_name, r.enabled);
                IF r.comment IS NOT NULL THEN
                    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', r.trigger_name, rel, r.comment);
                END IF;
            END IF;
            restored := restored + 1;  -- (there now)
        END IF;
        PERFORM crm_native._forget_replaced_trigger(r.schema_name, r.table_name, r.trigger_name);
    END LOOP;
    PERFORM crm_native._forget_installed_schema(target_schema);
    -- Native triggers gone and nothing put back: say so (after DROP
    -- EXTENSION ... CASCADE and install() again, say, nothing was left to
    -- record; the chats were then silently stored unlinked: found by an
    -- independent tester).
    IF dropped > 0 AND restored = 0 THEN
        RAISE WARNING 'crm_native.uninstall: no application trigger was restored on schema %: its chats are no longer synced to customers',
                      quote_ident(target_schema)
            USING DETAIL = 'install() recorded none to put back (none were there when it ran, e.g. after DROP EXTENSION crm_native CASCADE).',
                  HINT = 'Create the application''s triggers from its migrations, or call crm_native.install() again.';
    END IF;

    RETURN QUERY SELECT * FROM crm_native.status(target_schema);
END
$$;

COMMENT ON FUNCTION crm_native.install(text) IS
    'Replaces the application''s triggers on target_schema with crm_native''s native ones (idempotent); returns status()';
COMMENT ON FUNCTION crm_native.uninstall(text) IS
    'Drops the native triggers and restores the application triggers install() replaced; returns status()';
COMMENT ON FUNCTION crm_native.status(text) IS
    'Each trigger on the tables crm_native attaches to: its table, implementation (native, plpgsql, ...) and function';

-- crm_native 0.7.0: generated from src/sql/*.sql, do not edit
\echo Use "CREATE EXTENSION crm_native" to load this file. \quit

-- ---- src/sql/00_core.sql
-- Core objects of the crm_native schema.

-- The native triggers install() creates, one row per trigger. Each feature's
-- SQL fragment registers its own triggers here; install() reads the table at
-- call time. One application trigger may be replaced by several native ones
-- (e.g. metrics: one statement-level trigger per event, plus TRUNCATE).
CREATE TABLE crm_native.native_trigger (
    trigger_name text PRIMARY KEY,   -- name of the native trigger it creates
    table_name   text NOT NULL,      -- 'VC Usage' or 'customers' (unqualified)
    replaces     text NOT NULL,      -- the application trigger it takes over from
    ddl          text NOT NULL,      -- format() template; %1$s = the quoted,
                                     -- schema-qualified table, e.g.
                                     -- 'CREATE TRIGGER x AFTER INSERT ON %1$s ...';
                                     -- %2$s = the function's arguments
    on_partitions boolean NOT NULL DEFAULT false
                                     -- also created on each partition of the
                                     -- table, with the argument 'partition'
                                     -- (statement triggers: PostgreSQL clones
                                     -- row triggers onto partitions, not these)
);

-- Raises 3F000 '<fn>: schema "<target_schema>" does not exist' (the check
-- every function taking a target_schema makes first).
CREATE FUNCTION crm_native._require_schema(fn text, target_schema text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF target_schema IS NULL OR NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION '%: schema "%" does not exist', fn, target_schema
            USING ERRCODE = 'invalid_schema_name';
    END IF;
END
$$;

-- ---- src/sql/10_normalize.sql
-- Matching-key normalization (src/core/normalize.hpp, src/pg/normalize.cpp).
-- All return NULL for NULL and for input that normalizes to nothing.
--
-- Volatility: IMMUTABLE where the result depends on the arguments alone (for
-- a given build of ICU and libphonenumber: after upgrading either, rebuild
-- stored keys and any index on these functions, as for ICU collations);
-- STABLE where a GUC is read (crm_native.default_region,
-- crm_native.email_provider_rules).

CREATE FUNCTION crm_native.normalize_email(email text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_email'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_email(text) IS
    'Email matching key: trimmed, lower-cased; Gmail rules if crm_native.email_provider_rules is on';

CREATE FUNCTION crm_native.normalize_email(email text, provider_rules boolean) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_email_rules'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_email(text, boolean) IS
    'Email matching key: trimmed, lower-cased; Gmail rules (dots, +tags) if provider_rules';

CREATE FUNCTION crm_native.normalize_phone(phone text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_phone'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_phone(text) IS
    'Phone matching key: E.164 digits without +, national numbers read in crm_native.default_region';

CREATE FUNCTION crm_native.normalize_phone(phone text, region text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_phone_region'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_phone(text, text) IS
    'Phone matching key: E.164 digits without +, national numbers read in the given region';

CREATE FUNCTION crm_native.normalize_name(name text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_name'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_name(text) IS
    'Name matching key: Unicode NFKC case-fold, trimmed, inner whitespace collapsed';

CREATE FUNCTION crm_native.version_info() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'crm_normalization_version_info'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.version_info() IS
    'Versions of crm_native, ICU and libphonenumber (build-time version) that matching keys depend on';

-- Loads the normalizers' library data now; returns the milliseconds it took
-- in this backend (about 0 once loaded). Safe for anyone to call.
CREATE FUNCTION crm_native._normalization_warm_up() RETURNS double precision
    AS 'MODULE_PATHNAME', 'crm_normalization_warm_up'
    LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

-- ---- src/sql/20_customer_sync.sql
-- Customer sync from chat conversations (docs/customer_sync.md).

-- BEFORE INSERT / BEFORE UPDATE OF customer_name, customer_email,
-- customer_phone, FOR EACH ROW on "VC Usage". SECURITY INVOKER: it reads and
-- writes as the user whose statement fired it, so the application's
-- privileges and row-level security apply to every query it makes.
CREATE FUNCTION crm_native.customer_sync() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_customer_sync'
    LANGUAGE C;

INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl) VALUES
    ('trg_vc_usage_customer_sync_insert', 'VC Usage', 'trg_vc_usage_customer_sync_insert',
     'CREATE TRIGGER trg_vc_usage_customer_sync_insert BEFORE INSERT ON %1$s '
     'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()'),
    ('trg_vc_usage_customer_sync_update', 'VC Usage', 'trg_vc_usage_customer_sync_update',
     'CREATE TRIGGER trg_vc_usage_customer_sync_update '
     'BEFORE UPDATE OF customer_name, customer_email, customer_phone, customer_id, company_id ON %1$s '
     'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()');

-- ---- src/sql/30_customer_triggers.sql
-- Native trigger functions on customers (src/pg/matching_keys.cpp,
-- audit_log.cpp, lifecycle.cpp), registered for crm_native.install() under
-- the application's trigger names.
--
-- SECURITY INVOKER (the default, and the only choice for a C trigger that
-- must respect tenancy): the functions run as the role whose statement fired
-- the trigger, so that role's privileges and row-level security policies
-- apply to every row they read or write, exactly as for the plpgsql functions
-- they replace. No SET search_path clause: every statement they run names its
-- tables with the schema of the triggering table and its functions and
-- operators with pg_catalog (see src/pg/customer_triggers.hpp).

CREATE FUNCTION crm_native.matching_keys_sync() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_matching_keys_sync'
    LANGUAGE C;
COMMENT ON FUNCTION crm_native.matching_keys_sync() IS
    'AFTER INSERT OR UPDATE ON customers: keeps customer_matching_keys equal to the customer''s name, email and phone';

CREATE FUNCTION crm_native.audit_log() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_audit_log'
    LANGUAGE C;
COMMENT ON FUNCTION crm_native.audit_log() IS
    'AFTER INSERT OR UPDATE OR DELETE ON customers: one customer_audit_log row per changed row';

CREATE FUNCTION crm_native.lifecycle_tracking() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_lifecycle_tracking'
    LANGUAGE C;
COMMENT ON FUNCTION crm_native.lifecycle_tracking() IS
    'BEFORE UPDATE ON customers WHEN lifecycle_stage changes: stamps lifecycle_stage_changed_at, writes a stage_changed event';

-- Each definition as pg_get_triggerdef() writes it (install() and
-- verify_schema() compare the two: _trigger_as_registered()).
INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl) VALUES
    ('trg_customers_matching_keys_sync', 'customers', 'trg_customers_matching_keys_sync',
     'CREATE TRIGGER trg_customers_matching_keys_sync AFTER INSERT OR UPDATE ON %1$s'
     ' FOR EACH ROW EXECUTE FUNCTION crm_native.matching_keys_sync()'),
    ('trg_customers_audit_log', 'customers', 'trg_customers_audit_log',
     'CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR DELETE OR UPDATE ON %1$s'
     ' FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log()'),
    ('trg_customers_lifecycle_tracking', 'customers', 'trg_customers_lifecycle_tracking',
     'CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON %1$s'
     ' FOR EACH ROW WHEN ((old.lifecycle_stage IS DISTINCT FROM new.lifecycle_stage))'
     ' EXECUTE FUNCTION crm_native.lifecycle_tracking()');

-- ---- src/sql/40_metrics.sql
-- Native maintenance of customer_metrics (docs/metrics.md).
--
-- Four statement-level trigger functions replace the application's row-level
-- trg_vc_usage_metrics_refresh. Transition tables need one trigger per event;
-- TRUNCATE has its own. No SET clause, like the other trigger functions: a
-- SET would also apply to everything the trigger's writes fire (an
-- application's trigger on customer_metrics, a row-level security policy's
-- functions). Instead every statement names its tables with the triggering
-- table's schema and its functions, operators and types with pg_catalog
-- (src/pg/store_sql.cpp), and is planned with enable_seqscan and
-- enable_bitmapscan off (its no_seqscan pin, src/pg/index_pins.hpp): the
-- plans are prepared once per backend and kept, and one prepared while
-- "VC Usage" was still tiny would otherwise keep a sequential scan forever
-- after (and a bitmap scan reads every entry an EXISTS probe could stop at).

CREATE FUNCTION crm_native.metrics_insert() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_insert' LANGUAGE C;
CREATE FUNCTION crm_native.metrics_update() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_update' LANGUAGE C;
CREATE FUNCTION crm_native.metrics_delete() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_delete' LANGUAGE C;
CREATE FUNCTION crm_native.metrics_truncate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_truncate' LANGUAGE C;

-- A statement fires the statement triggers of the table it names only: the
-- INSERT, UPDATE and DELETE triggers also go on each partition of a
-- partitioned "VC Usage" (on_partitions), so that a chat written straight
-- into a partition is counted too. TRUNCATE does not: a TRUNCATE of
-- "VC Usage" fires the TRUNCATE triggers of its partitions as well, and a
-- TRUNCATE of one partition is left to rebuild_metrics(), like DETACH and
-- DROP of a partition (docs/metrics.md, "Partitions").
INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl, on_partitions) VALUES
    ('trg_vc_usage_metrics_refresh_ins', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_ins AFTER INSERT ON %1$s'
     ' REFERENCING NEW TABLE AS crm_new_rows'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_insert(%2$s)', true),
    ('trg_vc_usage_metrics_refresh_upd', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_upd AFTER UPDATE ON %1$s'
     ' REFERENCING OLD TABLE AS crm_old_rows NEW TABLE AS crm_new_rows'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_update(%2$s)', true),
    ('trg_vc_usage_metrics_refresh_del', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_del AFTER DELETE ON %1$s'
     ' REFERENCING OLD TABLE AS crm_old_rows'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_delete(%2$s)', true),
    ('trg_vc_usage_metrics_refresh_truncate', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_truncate AFTER TRUNCATE ON %1$s'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_truncate()', false);

-- Every customer whose customer_metrics row differs from the full
-- recomputation over "VC Usage" (same definitions as the reference
-- refresh_customer_metrics(): count(*), count(DISTINCT session_id),
-- coalesce(sum(view_count), 0), min/max(created_at), one row per customer
-- with at least one conversation). A missing row shows actual_* NULL, an
-- extra row expected_* NULL. company_id is reported when the row's company
-- is not a company of the customer's conversations. Empty when exact.
CREATE FUNCTION crm_native.verify_metrics(target_schema text DEFAULT 'public')
RETURNS TABLE (customer_id uuid,
               expected_company_id uuid, actual_company_id uuid,
               expected_conversations bigint, actual_conversations bigint,
               expected_sessions bigint, actual_sessions bigint,
               expected_views bigint, actual_views bigint,
               expected_first_interaction_at timestamptz, actual_first_interaction_at timestamptz,
               expected_last_interaction_at timestamptz, actual_last_interaction_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH expected AS (
            SELECT v.customer_id,
                   array_agg(DISTINCT v.company_id) AS companies,
                   count(*)::bigint AS n,
                   count(DISTINCT v.session_id)::bigint AS s,
                   coalesce(sum(v.view_count), 0)::bigint AS w,
                   min(v.created_at) AS f,
                   max(v.created_at) AS l
              FROM %1$I."VC Usage" v
             WHERE v.customer_id IS NOT NULL
             GROUP BY v.customer_id)
        SELECT coalesce(e.customer_id, m.customer_id),
               e.companies[1], m.company_id,
               e.n, m.total_conversations,
               e.s, m.total_sessions,
               e.w, m.total_views,
               e.f, m.first_interaction_at,
               e.l, m.last_interaction_at
          FROM expected e
          FULL JOIN %1$I.customer_metrics m ON m.customer_id = e.customer_id
         WHERE e.customer_id IS NULL OR m.customer_id IS NULL
            OR (e.n, e.s, e.w, e.f, e.l)
               IS DISTINCT FROM (m.total_conversations, m.total_sessions, m.total_views,
                                 m.first_interaction_at, m.last_interaction_at)
            OR m.company_id IS NULL OR NOT (m.company_id = ANY (e.companies))
         ORDER BY 1 $q$, target_schema);
END
$fn$;

-- Makes customer_metrics equal to the recomputation, for one customer or
-- (customer NULL) all of them, writing only the rows that differ. Returns the
-- number of rows inserted, updated or deleted. Takes SHARE ROW EXCLUSIVE on
-- customer_metrics, so the metrics triggers of concurrent chats wait for it
-- and then apply their deltas on top of the rebuilt rows.
CREATE FUNCTION crm_native.rebuild_metrics(target_schema text DEFAULT 'public',
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

-- ---- src/sql/50_install.sql
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
    PRIMARY KEY (schema_name, table_name, trigger_name)
);
SELECT pg_catalog.pg_extension_config_dump('crm_native.replaced_trigger', '');

-- Everything target_schema lacks, in the words of install()'s error message:
-- 'table customer_events', 'column customers.merged_into_customer_id',
-- 'column customers.id has type text, expected uuid'.
CREATE FUNCTION crm_native.missing_objects(target_schema text DEFAULT 'public')
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

-- Locks the tables that carry registered triggers, in a fixed order, with the
-- lock CREATE/DROP TRIGGER take anyway (it conflicts with itself, so two
-- concurrent install()/uninstall() calls run one after the other).
CREATE FUNCTION crm_native._lock_trigger_tables(target_schema text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl text;
BEGIN
    FOR tbl IN
        SELECT DISTINCT nt.table_name FROM crm_native.native_trigger nt ORDER BY 1
    LOOP
        IF to_regclass(format('%I.%I', target_schema, tbl)) IS NOT NULL THEN
            EXECUTE format('LOCK TABLE %I.%I IN SHARE ROW EXCLUSIVE MODE', target_schema, tbl);
        END IF;
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
     ORDER BY 2::text, 1
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

CREATE FUNCTION crm_native.uninstall(target_schema text DEFAULT 'public')
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

COMMENT ON FUNCTION crm_native.install(text) IS
    'Replaces the application''s triggers on target_schema with crm_native''s native ones (idempotent); returns status()';
COMMENT ON FUNCTION crm_native.uninstall(text) IS
    'Drops the native triggers and restores the application triggers install() replaced; returns status()';
COMMENT ON FUNCTION crm_native.status(text) IS
    'Each trigger on the tables crm_native attaches to: its table, implementation (native, plpgsql, ...) and function';

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

-- ---- src/sql/60_maintenance.sql
-- Maintenance: rebuild the matching keys from the customers' current values.
-- Keys are stored; they depend on the normalizers (ICU, libphonenumber data)
-- and on the GUCs crm_native.default_region / email_provider_rules. After an
-- upgrade of either library, a change of either GUC, or when switching from
-- the plpgsql triggers (whose keys were normalized differently), rebuild them.
-- The native keys trigger rewrites only keys whose raw value changed, so a
-- no-op UPDATE of customers would not do it. Returns the number of keys written.
-- Customer writes wait while it runs (chats that create or fill a customer
-- too): run it in READ COMMITTED, where its statements read after its lock.
-- A customer's matching keys as the native keys trigger writes them: one
-- row per non-empty normalized name, email and phone. Written with unnest
-- rather than VALUES so that Citus can push it down to the shards.
-- The key the keys trigger writes for a value with the current settings, or
-- NULL when it writes none (empty, or a value it cannot normalize, such as
-- a key a LATIN1 database cannot store): one such customer must not fail a
-- rebuild, health() or a search. Out of memory still raises.
CREATE FUNCTION crm_native._matching_key(key_type text, value text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_matching_key' LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION crm_native._customer_keys(name text, email text, phone text)
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

CREATE FUNCTION crm_native.rebuild_matching_keys(target_schema text DEFAULT 'public',
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

-- ---- src/sql/65_name_search.sql
-- Name search under row-level security (docs/operations.md, "Search under
-- row-level security"): a LEAKPROOF trigram operator and its GIN operator
-- class, and the choice of operator for search_customers (70_operations.sql).
-- New in 0.4.0.

-- Name similarity that row-level security can use an index for.
--
-- Under row-level security PostgreSQL evaluates a user's condition before
-- the tenant policy, or uses it as an index condition, only when every
-- function in it is LEAKPROOF. pg_trgm's % (similarity_op) is not declared
-- so, and a name search as a tenant role then scores every customer the
-- policy lets through. crm_native.% is the same operator (pg_trgm's own C
-- functions, loaded from its library) declared LEAKPROOF, with a GIN
-- operator class for it, so that an index
--   CREATE INDEX ... ON customers USING gin (customer_name crm_native.gin_trgm_leakproof_ops)
--     WHERE deleted_at IS NULL;
-- serves search_customers under row-level security (docs/operations.md).
-- Why LEAKPROOF holds: similarity_op's result depends only on its two
-- arguments and pg_trgm.similarity_threshold, and the only error it can raise
-- is "out of memory" for an argument over about 238 MB. This declaration
-- covers crm_native.% only: pg_trgm's % and every query using it keep their
-- behaviour. pg_trgm is a required extension (crm_native.control), so its
-- library is there.
CREATE FUNCTION crm_native.name_similar(text, text) RETURNS boolean
    AS '$libdir/pg_trgm', 'similarity_op' LANGUAGE C STRICT STABLE LEAKPROOF PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.name_similar(text, text) IS
    'pg_trgm''s similarity_op (text % text), declared LEAKPROOF for name search under row-level security';
CREATE OPERATOR crm_native.% (LEFTARG = text, RIGHTARG = text, PROCEDURE = crm_native.name_similar,
                              COMMUTATOR = OPERATOR(crm_native.%), RESTRICT = contsel, JOIN = contjoinsel);
CREATE FUNCTION crm_native._trgm_gin_extract_value(text, internal) RETURNS internal
    AS '$libdir/pg_trgm', 'gin_extract_value_trgm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm_native._trgm_gin_extract_query(text, internal, int2, internal, internal, internal, internal)
    RETURNS internal
    AS '$libdir/pg_trgm', 'gin_extract_query_trgm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm_native._trgm_gin_consistent(internal, int2, text, int4, internal, internal, internal, internal)
    RETURNS boolean
    AS '$libdir/pg_trgm', 'gin_trgm_consistent' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION crm_native._trgm_gin_triconsistent(internal, int2, text, int4, internal, internal, internal)
    RETURNS "char"
    AS '$libdir/pg_trgm', 'gin_trgm_triconsistent' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- Strategy 1 is pg_trgm's similarity strategy: its support functions
-- read the operator's meaning from that number.
CREATE OPERATOR CLASS crm_native.gin_trgm_leakproof_ops FOR TYPE text USING gin AS
    OPERATOR 1 crm_native.% (text, text),
    FUNCTION 1 pg_catalog.btint4cmp(int4, int4),
    FUNCTION 2 crm_native._trgm_gin_extract_value(text, internal),
    FUNCTION 3 crm_native._trgm_gin_extract_query(text, internal, int2, internal, internal, internal, internal),
    FUNCTION 4 crm_native._trgm_gin_consistent(internal, int2, text, int4, internal, internal, internal, internal),
    FUNCTION 6 crm_native._trgm_gin_triconsistent(internal, int2, text, int4, internal, internal, internal),
    STORAGE int4;

-- The operator the name branch of the search uses on target_schema:
-- crm_native.% when a valid index of crm_native.gin_trgm_leakproof_ops
-- covers customers.customer_name, whole or WHERE deleted_at IS NULL (it then
-- also works under row-level security), else pg_trgm's % (in schema trgm).
CREATE FUNCTION crm_native._search_name_operator(target_schema text, trgm text)
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

-- ---- src/sql/70_operations.sql
-- CRM operations on the native core (docs/operations.md): customer search,
-- relinking the chats that have no customer, merging two customers.
--
-- Plain SQL/plpgsql on top of the native normalizers and the native
-- triggers: the search normalizes its input exactly as the matching keys
-- were normalized; relink_chats runs the native sync itself (an UPDATE that
-- names a contact column of an unlinked chat); merge_customers moves the
-- chats with an UPDATE of customer_id, so the native metrics trigger keeps
-- customer_metrics exact.
--
-- Security: every function is SECURITY INVOKER, so the caller's privileges
-- and row-level security apply. Every table is qualified with the quoted
-- target schema; the functions pin search_path = pg_catalog, pg_temp (the
-- procedure relink_chats cannot have a SET clause, since it commits: its own
-- body only calls schema-qualified functions that do), so a hostile
-- search_path cannot redirect a read, a write, a function or an operator.

-- ---------------------------------------------------------------------------
-- Shared checks
-- ---------------------------------------------------------------------------

-- The registered native triggers that are missing or disabled on
-- target_schema (empty when install() was run and nothing was disabled since).
CREATE FUNCTION crm_native._ops_missing_native_triggers(target_schema text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(format('%s on %I', nt.trigger_name, nt.table_name)
                              ORDER BY nt.table_name, nt.trigger_name), '{}')
      FROM crm_native.native_trigger nt
     WHERE NOT EXISTS (
           SELECT FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE n.nspname = target_schema AND c.relname = nt.table_name
              AND t.tgname = nt.trigger_name AND NOT t.tgisinternal
              AND p.pronamespace = 'crm_native'::regnamespace
              AND t.tgenabled IN ('O', 'A'))
$$;

-- relink_chats and merge_customers rely on the native triggers (the sync's
-- rules, the metrics trigger, the matching keys trigger): refuse clearly
-- when install() has not been run, or the triggers would not fire.
CREATE FUNCTION crm_native._ops_require_native(fn text, target_schema text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text[] := crm_native._ops_missing_native_triggers(target_schema);
BEGIN
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION '%: the native triggers are not installed on schema "%"', fn, target_schema
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Missing or disabled: %s.', array_to_string(missing, ', ')),
                  HINT = format('Run SELECT crm_native.install(%L) first (docs/operations.md).', target_schema);
    END IF;
    IF current_setting('session_replication_role') = 'replica' THEN
        RAISE EXCEPTION '%: session_replication_role is replica, so the native triggers would not fire', fn
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

-- The check above runs as the caller: let every role read the registry of
-- native triggers (trigger names and DDL templates, nothing of a tenant).
GRANT SELECT ON crm_native.native_trigger TO PUBLIC;

-- ---------------------------------------------------------------------------
-- search_customers
-- ---------------------------------------------------------------------------

-- The search query as each kind of key, normalized exactly as the stored
-- keys were (same functions, same GUCs). A query with an '@' is an email:
-- it is not tried as a phone (its digits are not a phone number) nor as a
-- name. A query without letters that gives a phone key is a phone number:
-- it is not tried as a name (and is tried as an email, which costs one
-- index probe and finds nothing).
CREATE FUNCTION crm_native._search_keys(q text, OUT email_key text, OUT phone_key text, OUT name_key text,
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

-- The search statement for target_schema (pg_trgm in schema trgm; names
-- compared with crm_native._search_name_operator), with
-- parameters $1 company, $2 the trimmed query, $3 max_results, $4 the email
-- key, $5 the phone key, $6 the name key, $7 target_schema (unused), $8 whether to
-- search names by similarity (crm_native._search_keys). Separate, so
-- that tests and the benchmark EXPLAIN exactly what search_customers runs.
--
-- Each branch uses its own index: each key probe is a plain equality on the
-- three columns of the keys index (company_id, key_type, normalized_value);
-- names use the trigram GIN index on customer_name (WHERE deleted_at IS
-- NULL): pg_trgm's, or crm_native.gin_trgm_leakproof_ops, which row-level
-- security can use too. A key holder counts when it is live, or merged (then its survivor
-- is returned: the end of its merge chain, followed within the company, when
-- that customer is live; none for a chain that loops, leaves the company or
-- runs over 64 hops); name hits are live customers. The chain is a recursive
-- CTE, not a function call, so that on Citus the whole statement runs on the
-- company's shard. Only the top max_results
-- unmerged name hits are kept: each is its own survivor, so no better
-- survivor can be cut off; merged name hits (rare) are all resolved.
CREATE FUNCTION crm_native._search_query(target_schema text, trgm text)
RETURNS text
LANGUAGE sql STABLE
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
             WHERE $8 AND c.deleted_at IS NULL AND c.customer_name OPERATOR(%3$s) $2
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
         LIMIT $3$q$, target_schema, trgm, crm_native._search_name_operator(target_schema, trgm))
$f$;

CREATE FUNCTION crm_native.search_customers(company_id uuid, query text, max_results int DEFAULT 20,
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

COMMENT ON FUNCTION crm_native.search_customers(uuid, text, int, text) IS
    'Customers of a company matching a query as an email, a phone (native keys) or a name (key or pg_trgm similarity); merged customers resolved to their survivor';

-- ---------------------------------------------------------------------------
-- relink_chats
-- ---------------------------------------------------------------------------

-- Progress of one relink_chats call, carried from batch to batch.
CREATE TYPE crm_native.relink_progress AS (
    done         boolean,
    last_id      text,         -- the highest chat id looked at (as text: any id type); NULL before the first batch
    batches      integer,
    seen         bigint,       -- unlinked chats looked at
    linked       bigint,       -- of which now linked
    created      bigint,       -- customers created for them
    started      timestamptz,  -- clock_timestamp() at the start
    uses_index   text          -- the index on unlinked chats used, if any
);

-- The index relink_chats walks: a valid btree index on "VC Usage" whose
-- first column is id and whose predicate is customer_id IS NULL. NULL when
-- there is none (then each batch walks the primary key).
CREATE FUNCTION crm_native._unlinked_chats_index(target_schema text)
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

CREATE FUNCTION crm_native._relink_start(target_schema text, batch_size int)
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

-- One batch: the next batch_size unlinked chats by id, each "updated" with
-- SET customer_email = customer_email, which runs the native sync's rules
-- (trg_vc_usage_customer_sync_update fires for an UPDATE naming a contact
-- column, and syncs a row that is still unlinked). A row linked meanwhile by
-- someone else is skipped (the WHERE clause is rechecked on its new version).
-- Whether a row's xmin is this transaction or one of its subtransactions:
-- the batches below run in subtransactions (to skip a chat that cannot be
-- linked), whose rows carry their own xid.
CREATE FUNCTION crm_native._written_here(xmin xid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'crm_written_here' LANGUAGE C STRICT STABLE;

CREATE FUNCTION crm_native._relink_batch(target_schema text, batch_size int, progress crm_native.relink_progress)
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

-- Commits after every batch, so it must be CALLed outside a transaction
-- block. No SET clause (a procedure that commits cannot have one): its body
-- names only schema-qualified functions and reads a field, nothing a
-- search_path could redirect.
CREATE PROCEDURE crm_native.relink_chats(target_schema text DEFAULT 'public', batch_size int DEFAULT 10000)
LANGUAGE plpgsql
AS $$
DECLARE
    progress crm_native.relink_progress;
BEGIN
    -- Fails at once (invalid transaction termination) inside a transaction
    -- block, before any work; otherwise ends the CALL's own empty transaction.
    COMMIT;
    progress := crm_native._relink_start(target_schema, batch_size);
    LOOP
        progress := crm_native._relink_batch(target_schema, batch_size, progress);
        COMMIT;
        EXIT WHEN progress.done;
    END LOOP;
END
$$;

COMMENT ON PROCEDURE crm_native.relink_chats(text, int) IS
    'Links every chat without a customer by the native sync''s rules, creating customers where the sync would; commits per batch';

-- ---------------------------------------------------------------------------
-- merge_customers
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm_native.merge_customers(source uuid, target uuid, target_schema text DEFAULT 'public')
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

COMMENT ON FUNCTION crm_native.merge_customers(uuid, uuid, text) IS
    'Merges customer source into target (same company, both live): chats, metrics, keys, missing contact data; logs it; returns target';

-- ---------------------------------------------------------------------------
-- verify_operations: what the operations need, and the index advice
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm_native.verify_operations(target_schema text DEFAULT 'public')
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

COMMENT ON FUNCTION crm_native.verify_operations(text) IS
    'What search_customers, relink_chats and merge_customers need on target_schema (native triggers, indexes), with advice';

-- ---- src/sql/80_observe.sql
-- Verify and observe (docs/observe.md): the seed's index and trigger
-- verification plan as functions (verify_schema, index_report, health) and
-- the native triggers' statistics in shared memory (trigger_stats; C part in
-- src/pg/trigger_stats.cpp).
--
-- All functions are SECURITY INVOKER with search_path pinned to
-- pg_catalog, pg_temp: every name they build is schema-qualified.

-- ---------------------------------------------------------------------------
-- The seed's index inventory (index-and-trigger-verification.md, section 1),
-- as the reference migration creates it (reference/01_schema.sql: index 14
-- leads with company_id, as the contract asks). An index is matched by its
-- definition, not by its name: access method, key columns in order with
-- their sort order and non-default operator class, and predicate, written as
-- crm_native._index_signature() writes them.
-- ---------------------------------------------------------------------------
CREATE TABLE crm_native.expected_index (
    ordinal    int PRIMARY KEY,
    index_name text NOT NULL,
    table_name text NOT NULL,
    signature  text NOT NULL,            -- e.g. 'btree (company_id, created_at DESC) WHERE (deleted_at IS NULL)'
    is_unique  boolean NOT NULL DEFAULT false,
    is_primary boolean NOT NULL DEFAULT false,
    purpose    text
);

INSERT INTO crm_native.expected_index (ordinal, index_name, table_name, signature, is_unique, is_primary, purpose) VALUES
 (1, 'customers_pkey', 'customers', 'btree (id)', true, true, 'primary key'),
 (2, 'idx_customers_not_deleted', 'customers', 'btree (company_id, deleted_at) WHERE (deleted_at IS NULL)', false, false, 'live customers of a company'),
 (3, 'idx_customers_company_status', 'customers', 'btree (company_id, status) WHERE (deleted_at IS NULL)', false, false, 'status filter'),
 (4, 'idx_customers_lifecycle', 'customers', 'btree (company_id, lifecycle_stage) WHERE (deleted_at IS NULL)', false, false, 'lifecycle filter'),
 (5, 'idx_customers_name_trgm', 'customers', 'gin (customer_name gin_trgm_ops) WHERE (deleted_at IS NULL)', false, false, 'fuzzy name search'),
 (6, 'idx_customers_email', 'customers', 'btree (company_id, customer_email) WHERE ((deleted_at IS NULL) AND (customer_email IS NOT NULL))', false, false, 'email search'),
 (7, 'idx_customers_phone', 'customers', 'btree (company_id, customer_phone) WHERE ((deleted_at IS NULL) AND (customer_phone IS NOT NULL))', false, false, 'phone search'),
 (8, 'idx_customers_tags', 'customers', 'gin (tags) WHERE (deleted_at IS NULL)', false, false, 'tag containment'),
 (9, 'customers_company_id_fkey', 'customers', 'btree (company_id)', false, false, 'foreign key to companies'),
 (10, 'customers_merged_into_customer_id_fkey', 'customers', 'btree (merged_into_customer_id)', false, false, 'merge chains'),
 (11, 'idx_vc_usage_customer_fk', 'VC Usage', 'btree (customer_id) WHERE (customer_id IS NOT NULL)', false, false, 'chats of a customer'),
 (12, 'idx_vc_usage_company_customer', 'VC Usage', 'btree (company_id, customer_id, created_at DESC) WHERE (customer_id IS NOT NULL)', false, false, 'conversation timeline'),
 (13, 'idx_vc_usage_session_customer', 'VC Usage', 'btree (session_id, customer_id)', false, false, 'sessions of a customer'),
 (14, 'idx_matching_keys_normalized', 'customer_matching_keys', 'btree (company_id, key_type, normalized_value)', false, false, 'key lookup, tenant first'),
 (15, 'idx_matching_keys_customer', 'customer_matching_keys', 'btree (customer_id)', false, false, 'keys of a customer'),
 (16, 'idx_conversation_summaries_customer', 'customer_conversation_summaries', 'btree (customer_id, conversation_date DESC)', false, false, 'summaries by date'),
 (17, 'idx_conversation_topics', 'customer_conversation_summaries', 'gin (extracted_topics)', false, false, 'topic search'),
 (18, 'idx_merge_log_source', 'customer_merge_log', 'btree (source_customer_id)', false, false, 'merges from a customer'),
 (19, 'idx_merge_log_target', 'customer_merge_log', 'btree (target_customer_id)', false, false, 'merges into a customer'),
 (20, 'idx_merge_log_date', 'customer_merge_log', 'btree (merged_at DESC)', false, false, 'merges by date'),
 (21, 'idx_customer_events_customer', 'customer_events', 'btree (customer_id, created_at DESC)', false, false, 'customer timeline'),
 (22, 'idx_customer_events_company', 'customer_events', 'btree (company_id, created_at DESC)', false, false, 'company events'),
 (23, 'idx_customer_events_type', 'customer_events', 'btree (event_type, created_at DESC)', false, false, 'events by type'),
 (24, 'idx_audit_log_record', 'customer_audit_log', 'btree (table_name, record_id, changed_at DESC)', false, false, 'audit trail of a record'),
 (25, 'idx_audit_log_company', 'customer_audit_log', 'btree (company_id, changed_at DESC)', false, false, 'company audit trail'),
 (26, 'idx_audit_log_user', 'customer_audit_log', 'btree (changed_by_user_id, changed_at DESC)', false, false, 'changes by user'),
 (27, 'idx_customer_metrics_id', 'customer_metrics', 'btree (customer_id)', true, true, 'metrics row of a customer (primary key)'),
 (28, 'idx_customer_metrics_company', 'customer_metrics', 'btree (company_id)', false, false, 'metrics of a company');

-- What the native triggers rely on beyond the columns (crm_native.required_column):
-- an index whose leading key columns are exactly these columns (in this order
-- when ordered), valid, and unique when must_be_unique. A predicate is
-- accepted only when allowed_predicate names it.
CREATE TABLE crm_native.required_index (
    ordinal           int PRIMARY KEY,
    table_name        text NOT NULL,
    columns           text[] NOT NULL,
    ordered           boolean NOT NULL,  -- false: the leading columns in any order, the first one fixed
    must_be_unique    boolean NOT NULL DEFAULT false,
    allowed_predicate text,              -- e.g. '(customer_id IS NOT NULL)'
    needed_by         text NOT NULL,
    fix               text NOT NULL      -- format() template, %1$s = quoted schema
);
-- What the triggers expect of the schema, nothing of a tenant: readable by
-- every role, so that a table owner who is not a superuser can call
-- install() and verify_schema() (docs/install.md).
GRANT SELECT ON crm_native.expected_index, crm_native.required_index TO PUBLIC;

INSERT INTO crm_native.required_index VALUES
 (1, 'customer_matching_keys', '{company_id,key_type,normalized_value}', false, false, NULL,
  'customer_sync: key lookups within the chat''s company (an index not leading with company_id crosses tenants and scans)',
  'CREATE INDEX CONCURRENTLY idx_matching_keys_normalized ON %1$s.customer_matching_keys USING btree (company_id, key_type, normalized_value)'),
 (2, 'customer_matching_keys', '{customer_id}', true, false, NULL,
  'matching_keys_sync: the rewrite of a customer''s keys (and the ON DELETE CASCADE)',
  'CREATE INDEX CONCURRENTLY idx_matching_keys_customer ON %1$s.customer_matching_keys USING btree (customer_id)'),
 (3, 'customer_metrics', '{customer_id}', true, true, NULL,
  'metrics_*: INSERT ... ON CONFLICT needs a unique index on customer_id (on Citus: customer_id, company_id)',
  'ALTER TABLE %1$s.customer_metrics ADD CONSTRAINT idx_customer_metrics_id PRIMARY KEY (customer_id)'),
 (4, 'customers', '{id}', true, true, NULL,
  'customer_sync, metrics: every customer is read by primary key',
  'ALTER TABLE %1$s.customers ADD PRIMARY KEY (id)'),
 (5, 'VC Usage', '{customer_id}', true, false, '(customer_id IS NOT NULL)',
  'metrics_*: recounting a customer''s conversations',
  'CREATE INDEX CONCURRENTLY idx_vc_usage_customer_fk ON %1$s."VC Usage" USING btree (customer_id) WHERE (customer_id IS NOT NULL)'),
 (6, 'VC Usage', '{session_id,customer_id}', false, false, NULL,
  'metrics_insert: is the chat''s session new for its customer (one probe per chat)',
  'CREATE INDEX CONCURRENTLY idx_vc_usage_session_customer ON %1$s."VC Usage" USING btree (session_id, customer_id)');

-- The per-trigger budgets of the seed (section 3, "Estimated Time": the upper
-- end of each range; all triggers "<10ms"), compared with p99 by health().
CREATE TABLE crm_native.trigger_budget (
    function_name text PRIMARY KEY,      -- crm_native function, without schema
    app_trigger   text NOT NULL,
    budget_ms     float8 NOT NULL,
    seed_estimate text NOT NULL
);
INSERT INTO crm_native.trigger_budget VALUES
 ('customer_sync', 'trg_vc_usage_customer_sync_insert / _update', 8, '5-8ms'),
 ('matching_keys_sync', 'trg_customers_matching_keys_sync', 3, '2-3ms'),
 ('metrics_insert', 'trg_vc_usage_metrics_refresh', 10, '8-10ms'),
 ('metrics_update', 'trg_vc_usage_metrics_refresh', 10, '8-10ms'),
 ('metrics_delete', 'trg_vc_usage_metrics_refresh', 10, '8-10ms'),
 ('metrics_truncate', 'trg_vc_usage_metrics_refresh', 10, '8-10ms'),
 ('audit_log', 'trg_customers_audit_log', 2, '1-2ms'),
 ('lifecycle_tracking', 'trg_customers_lifecycle_tracking', 2, '1-2ms');

-- ---------------------------------------------------------------------------
-- Index definitions as comparable text
-- ---------------------------------------------------------------------------

-- The key columns of an index, each as "column [opclass] [DESC] [NULLS ...]":
-- the operator class only when it is not the default one, NULLS only when
-- not the default for the order. Expressions as pg_get_indexdef writes them.
CREATE FUNCTION crm_native._index_columns(idx oid)
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

-- "am (col, col DESC, col opclass) WHERE (predicate)": what expected_index.signature holds.
CREATE FUNCTION crm_native._index_signature(idx oid)
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

-- Every index on the tables of target_schema, with what the checks compare.
CREATE FUNCTION crm_native._schema_indexes(target_schema text)
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

-- The plain column names of an index's leading key columns (NULL for an
-- expression column).
CREATE FUNCTION crm_native._index_key_attnames(idx oid)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(a.attname::text ORDER BY k.n)
      FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, n)
      LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
     WHERE i.indexrelid = idx AND k.n <= i.indnkeyatts
$$;

-- The first valid index on relid whose leading key columns are cols (in that
-- order when ordered; else the first column fixed and the rest in any order),
-- unique when must_be_unique (then it must have exactly these key columns),
-- not partial unless its predicate is allowed_predicate. NULL when none.
CREATE FUNCTION crm_native._index_leading_with(relid oid, cols text[], ordered boolean,
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

-- ---------------------------------------------------------------------------
-- verify_schema
-- ---------------------------------------------------------------------------

-- One row per expected object. status: ok, missing, different, disabled.
-- fix: the DDL (or call) that repairs it, NULL when ok.
CREATE FUNCTION crm_native.verify_schema(target_schema text DEFAULT 'public')
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

COMMENT ON FUNCTION crm_native.verify_schema(text) IS
    'One row per expected object (seed index inventory matched by definition, the six triggers, what the native triggers rely on, foreign-key indexes): status ok/missing/different/disabled, detail, and the DDL that fixes it';

-- install() warns for each missing object the native triggers rely on
-- (called from crm_native.install() in 50_install.sql).
CREATE FUNCTION crm_native._warn_missing_dependencies(target_schema text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM crm_native.verify_schema(target_schema) v
              WHERE v.kind = 'dependency' AND v.status <> 'ok'
    LOOP
        RAISE WARNING 'crm_native.install: % is missing: %', r.object, r.detail
            USING HINT = coalesce('Fix: ' || r.fix, 'See SELECT * FROM crm_native.verify_schema();');
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- index_report
-- ---------------------------------------------------------------------------

-- Per index of target_schema's tables: size, scans and tuples read since the
-- last statistics reset, a usage category (unused: 0 scans; low: 1-99;
-- used: 100 or more), unique/primary (never proposed for dropping), and the
-- index it overlaps (its key columns are a leading prefix of that one's, same
-- access method, same predicate).
CREATE FUNCTION crm_native.index_report(target_schema text DEFAULT 'public')
RETURNS TABLE (table_name text, index_name text, size_bytes bigint, size text, scans bigint,
               tuples_read bigint, tuples_fetched bigint, category text, is_unique boolean,
               is_primary boolean, overlaps_with text, suggestion text, definition text,
               stats_since timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM crm_native._require_schema('crm_native.index_report', target_schema);
    RETURN QUERY
    WITH idx AS (SELECT * FROM crm_native._schema_indexes(target_schema)),
    rep AS (
        SELECT x.*, pg_relation_size(x.indexrelid) AS bytes,
               coalesce(s.idx_scan, 0) AS n_scan, coalesce(s.idx_tup_read, 0) AS n_read,
               coalesce(s.idx_tup_fetch, 0) AS n_fetch,
               (SELECT y.index_name FROM idx y
                 WHERE y.relid = x.relid AND y.indexrelid <> x.indexrelid AND y.am = x.am
                   AND y.predicate IS NOT DISTINCT FROM x.predicate
                   AND cardinality(y.columns) >= cardinality(x.columns)
                   AND y.columns[1:cardinality(x.columns)] = x.columns
                   -- of two identical indexes, the one of the lower name is kept
                   AND (cardinality(y.columns) > cardinality(x.columns) OR y.is_unique OR
                        (NOT x.is_unique AND y.index_name < x.index_name))
                 ORDER BY cardinality(y.columns), y.index_name LIMIT 1) AS covered_by
          FROM idx x
          LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid)
    SELECT r.table_name, r.index_name, r.bytes, pg_size_pretty(r.bytes), r.n_scan, r.n_read, r.n_fetch,
           CASE WHEN r.n_scan = 0 THEN 'unused' WHEN r.n_scan < 100 THEN 'low' ELSE 'used' END,
           r.is_unique, r.is_primary, r.covered_by,
           CASE WHEN r.is_primary THEN 'keep: primary key'
                WHEN r.is_unique THEN 'keep: enforces uniqueness'
                WHEN NOT r.is_valid THEN 'invalid: REINDEX INDEX CONCURRENTLY or drop it'
                WHEN r.covered_by IS NOT NULL
                    THEN format('overlaps %I (a leading prefix of it): candidate to drop', r.covered_by)
                WHEN r.n_scan = 0 THEN 'unused since the statistics reset: candidate to drop after a representative period'
                ELSE 'keep' END,
           r.signature,
           (SELECT d.stats_reset FROM pg_stat_database d WHERE d.datname = current_database())
      FROM rep r
     ORDER BY r.table_name, r.index_name;
END
$$;

COMMENT ON FUNCTION crm_native.index_report(text) IS
    'Per index: size, scans and tuples since the statistics reset, category unused (0 scans) / low (1-99) / used (>= 100), unique/primary, overlap with a longer index';

-- ---------------------------------------------------------------------------
-- Trigger statistics in shared memory (src/pg/trigger_stats.cpp): the seed's
-- trigger_performance_log without a write per call. Needs
-- shared_preload_libraries = 'crm_native'; without it these raise an error
-- that says so.
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm_native._trigger_stats(
    OUT dbid oid, OUT function_oid oid, OUT relid oid, OUT function_name text, OUT table_name text,
    OUT calls bigint, OUT rows bigint, OUT errors bigint, OUT serialization_failures bigint,
    OUT total_ms float8, OUT min_ms float8, OUT max_ms float8,
    OUT p50_ms float8, OUT p95_ms float8, OUT p99_ms float8,
    OUT customers_created bigint, OUT customers_matched bigint,
    OUT unlinked_no_contact bigint, OUT unlinked_normalize_failed bigint,
    OUT lock_waits bigint, OUT lock_wait_ms float8, OUT this_database boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'crm_trigger_stats'
LANGUAGE C STRICT VOLATILE;

-- One row per (database, native trigger function, table) called since the
-- last reset. Times in milliseconds; p50/p95/p99 from a fixed histogram (at
-- most 12.5% above the true value, never above max_ms). Counters are not
-- transactional: the calls of transactions that rolled back count too.
CREATE VIEW crm_native.trigger_stats AS
SELECT d.datname AS database, s.function_name AS function, s.table_name,
       s.calls, s.rows, s.total_ms, s.total_ms / nullif(s.calls, 0) AS mean_ms, s.min_ms, s.max_ms,
       s.p50_ms, s.p95_ms, s.p99_ms, s.errors, s.serialization_failures,
       s.customers_created, s.customers_matched, s.unlinked_no_contact, s.unlinked_normalize_failed,
       s.lock_waits, s.lock_wait_ms, s.dbid, s.function_oid, s.relid
  FROM crm_native._trigger_stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid;

CREATE FUNCTION crm_native.trigger_stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'crm_trigger_stats_reset'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION crm_native.trigger_stats_reset() FROM PUBLIC;

-- entries in use (of max_entries: calls of (function, table) pairs beyond it
-- are not counted, dropped_calls says how many), and when the statistics
-- were last reset.
CREATE FUNCTION crm_native.trigger_stats_info(
    OUT entries int, OUT max_entries int, OUT dropped_calls bigint, OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'crm_trigger_stats_info'
LANGUAGE C VOLATILE;

COMMENT ON VIEW crm_native.trigger_stats IS
    'Per native trigger function and table: calls, rows, total/mean/min/max and p50/p95/p99 ms, errors, serialization failures, customers created/matched, chats left unlinked by reason, lock waits (needs shared_preload_libraries = crm_native)';

-- ---------------------------------------------------------------------------
-- health: one row per check, for a monitoring probe
-- ---------------------------------------------------------------------------

-- status: ok, warning, error or unknown; value: the number the check counts
-- (problems, differing rows, unlinked chats, p99 in ms). metrics_sample: how
-- many customers (chosen at random) the metrics and matching-keys checks
-- recompute; NULL checks every customer (costly on a large database).
CREATE FUNCTION crm_native.health(target_schema text DEFAULT 'public', metrics_sample integer DEFAULT 1000)
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

COMMENT ON FUNCTION crm_native.health(text, integer) IS
    'One row per check (schema, metrics and matching keys recomputed for a sample, unlinked chats, trigger p99 against the seed''s budgets): status ok / warning / error / unknown';

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

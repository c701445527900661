-- crm_native 0.1.0: generated from src/sql/*.sql, do not edit
\echo Use "CREATE EXTENSION crm_native" to load this file. \quit

-- ---- src/sql/00_core.sql
-- Core objects of the crm_native schema.

-- Test-only: raises each kind of failure inside live C++ code to prove the
-- boundary guards (src/pg/guard.hpp). Not for applications; superuser only.
CREATE FUNCTION crm_native._guard_test(kind text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_guard_test'
    LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION crm_native._guard_test(text) FROM PUBLIC;

-- The native triggers install() creates, one row per trigger. Each feature's
-- SQL fragment registers its own triggers here; install() reads the table at
-- call time. One application trigger may be replaced by several native ones
-- (e.g. metrics: one statement-level trigger per event, plus TRUNCATE).
CREATE TABLE crm_native.native_trigger (
    trigger_name text PRIMARY KEY,   -- name of the native trigger it creates
    table_name   text NOT NULL,      -- 'VC Usage' or 'customers' (unqualified)
    replaces     text NOT NULL,      -- the application trigger it takes over from
    ddl          text NOT NULL       -- format() template; %1$s = the quoted,
                                     -- schema-qualified table, e.g.
                                     -- 'CREATE TRIGGER x AFTER INSERT ON %1$s ...'
);

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
     'BEFORE UPDATE OF customer_name, customer_email, customer_phone ON %1$s '
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

INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl) VALUES
    ('trg_customers_matching_keys_sync', 'customers', 'trg_customers_matching_keys_sync',
     'CREATE TRIGGER trg_customers_matching_keys_sync AFTER INSERT OR UPDATE ON %1$s'
     ' FOR EACH ROW EXECUTE FUNCTION crm_native.matching_keys_sync()'),
    ('trg_customers_audit_log', 'customers', 'trg_customers_audit_log',
     'CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR UPDATE OR DELETE ON %1$s'
     ' FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log()'),
    ('trg_customers_lifecycle_tracking', 'customers', 'trg_customers_lifecycle_tracking',
     'CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON %1$s'
     ' FOR EACH ROW WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage)'
     ' EXECUTE FUNCTION crm_native.lifecycle_tracking()');

-- ---- src/sql/40_metrics.sql
-- Native maintenance of customer_metrics (docs/metrics.md).
--
-- Four statement-level trigger functions replace the application's row-level
-- trg_vc_usage_metrics_refresh. Transition tables need one trigger per event;
-- TRUNCATE has its own. search_path is pinned so that a caller's search_path
-- cannot redirect anything the trigger resolves (its tables are
-- schema-qualified with the triggering table's schema anyway).
--
-- Every query of these triggers on a real table is meant to be an index
-- probe. Their plans are prepared once per backend and kept; a plan prepared
-- while "VC Usage" was still tiny would otherwise keep a sequential scan
-- forever after (and a bitmap scan reads every entry an EXISTS probe could
-- stop at): planning with both disabled keeps the probes on the indexes
-- whatever the table's size when the backend first fired the trigger.

CREATE FUNCTION crm_native.metrics_insert() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_insert'
    LANGUAGE C SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off SET enable_bitmapscan = off;
CREATE FUNCTION crm_native.metrics_update() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_update'
    LANGUAGE C SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off SET enable_bitmapscan = off;
CREATE FUNCTION crm_native.metrics_delete() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_delete'
    LANGUAGE C SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off SET enable_bitmapscan = off;
CREATE FUNCTION crm_native.metrics_truncate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_metrics_truncate'
    LANGUAGE C SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off SET enable_bitmapscan = off;

INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl) VALUES
    ('trg_vc_usage_metrics_refresh_ins', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_ins AFTER INSERT ON %1$s'
     ' REFERENCING NEW TABLE AS crm_new_rows'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_insert()'),
    ('trg_vc_usage_metrics_refresh_upd', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_upd AFTER UPDATE ON %1$s'
     ' REFERENCING OLD TABLE AS crm_old_rows NEW TABLE AS crm_new_rows'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_update()'),
    ('trg_vc_usage_metrics_refresh_del', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_del AFTER DELETE ON %1$s'
     ' REFERENCING OLD TABLE AS crm_old_rows'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_delete()'),
    ('trg_vc_usage_metrics_refresh_truncate', 'VC Usage', 'trg_vc_usage_metrics_refresh',
     'CREATE TRIGGER trg_vc_usage_metrics_refresh_truncate AFTER TRUNCATE ON %1$s'
     ' FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_truncate()');

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
BEGIN
    EXECUTE format('LOCK TABLE %I.customer_metrics IN SHARE ROW EXCLUSIVE MODE', target_schema);
    EXECUTE format($q$
        DELETE FROM %1$I.customer_metrics m
         WHERE ($1 IS NULL OR m.customer_id = $1)
           AND NOT EXISTS (SELECT 1 FROM %1$I."VC Usage" v WHERE v.customer_id = m.customer_id) $q$,
        target_schema) USING customer;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    EXECUTE format($q$
        INSERT INTO %1$I.customer_metrics AS m
               (customer_id, company_id, total_conversations, total_sessions, total_views,
                first_interaction_at, last_interaction_at, refreshed_at)
        SELECT v.customer_id, (array_agg(v.company_id))[1], count(*), count(DISTINCT v.session_id),
               coalesce(sum(v.view_count), 0), min(v.created_at), max(v.created_at), now()
          FROM %1$I."VC Usage" v
         WHERE v.customer_id IS NOT NULL AND ($1 IS NULL OR v.customer_id = $1)
         GROUP BY v.customer_id
         ORDER BY v.customer_id
        ON CONFLICT (customer_id) DO UPDATE
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
        target_schema) USING customer;
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
-- missing in one error. Features may add rows for columns they start to use.
CREATE TABLE crm_native.required_column (
    ordinal     int PRIMARY KEY,        -- report order
    table_name  text NOT NULL,
    column_name text NOT NULL,
    types       regtype[] NOT NULL,     -- accepted types, first one is the documented one
    UNIQUE (table_name, column_name)
);

INSERT INTO crm_native.required_column (ordinal, table_name, column_name, types)
SELECT row_number() OVER () * 10, t, c, ty::regtype[]
FROM (VALUES
    ('customers', 'id', '{uuid}'),
    ('customers', 'company_id', '{uuid}'),
    ('customers', 'customer_name', '{text,varchar}'),
    ('customers', 'customer_email', '{text,varchar}'),
    ('customers', 'customer_phone', '{text,varchar}'),
    ('customers', 'lifecycle_stage', '{text,varchar}'),
    ('customers', 'lifecycle_stage_changed_at', '{timestamptz}'),
    ('customers', 'source', '{text,varchar}'),
    ('customers', 'created_by_user_id', '{uuid}'),
    ('customers', 'created_at', '{timestamptz}'),
    ('customers', 'updated_at', '{timestamptz}'),
    ('customers', 'deleted_at', '{timestamptz}'),
    ('customers', 'merged_into_customer_id', '{uuid}'),
    ('VC Usage', 'id', '{bigint,integer}'),
    ('VC Usage', 'company_id', '{uuid}'),
    ('VC Usage', 'customer_id', '{uuid}'),
    ('VC Usage', 'customer_name', '{text,varchar}'),
    ('VC Usage', 'customer_email', '{text,varchar}'),
    ('VC Usage', 'customer_phone', '{text,varchar}'),
    ('VC Usage', 'session_id', '{text,varchar}'),
    ('VC Usage', 'view_count', '{integer,smallint,bigint}'),
    ('VC Usage', 'created_at', '{timestamptz}'),
    ('customer_matching_keys', 'customer_id', '{uuid}'),
    ('customer_matching_keys', 'company_id', '{uuid}'),
    ('customer_matching_keys', 'key_type', '{text,varchar}'),
    ('customer_matching_keys', 'key_value', '{text,varchar}'),
    ('customer_matching_keys', 'normalized_value', '{text,varchar}'),
    ('customer_events', 'customer_id', '{uuid}'),
    ('customer_events', 'company_id', '{uuid}'),
    ('customer_events', 'event_type', '{text,varchar}'),
    ('customer_events', 'event_data', '{jsonb}'),
    ('customer_audit_log', 'table_name', '{text,varchar}'),
    ('customer_audit_log', 'record_id', '{uuid}'),
    ('customer_audit_log', 'company_id', '{uuid}'),
    ('customer_audit_log', 'operation', '{text,varchar}'),
    ('customer_audit_log', 'old_data', '{jsonb}'),
    ('customer_audit_log', 'new_data', '{jsonb}'),
    ('customer_audit_log', 'changed_fields', '{text[]}'),
    ('customer_audit_log', 'changed_by_user_id', '{uuid}'),
    ('customer_metrics', 'customer_id', '{uuid}'),
    ('customer_metrics', 'company_id', '{uuid}'),
    ('customer_metrics', 'total_conversations', '{bigint}'),
    ('customer_metrics', 'total_sessions', '{bigint}'),
    ('customer_metrics', 'total_views', '{bigint}'),
    ('customer_metrics', 'first_interaction_at', '{timestamptz}'),
    ('customer_metrics', 'last_interaction_at', '{timestamptz}'),
    ('customer_metrics', 'refreshed_at', '{timestamptz}')
) AS v (t, c, ty);

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
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION 'crm_native.status: schema "%" does not exist', target_schema
            USING ERRCODE = 'invalid_schema_name';
    END IF;
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
CREATE FUNCTION crm_native._set_trigger_enabled(target_schema text, tbl text, trg text, enabled "char")
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF enabled = 'O' THEN
        RETURN;  -- the default state of a new trigger
    END IF;
    EXECUTE format('ALTER TABLE %I.%I %s TRIGGER %I', target_schema, tbl,
                   CASE enabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                                WHEN 'A' THEN 'ENABLE ALWAYS' END, trg);
END
$$;

CREATE FUNCTION crm_native.install(target_schema text DEFAULT 'public')
RETURNS TABLE (trigger_name text, table_name text, implementation text, function text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    missing text[];
    r record;
    app record;
    existing record;
    rel regclass;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION 'crm_native.install: schema "%" does not exist', target_schema
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    missing := crm_native.missing_objects(target_schema);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'crm_native.install: schema "%" is missing: %', target_schema,
                        array_to_string(missing, '; ')
            USING ERRCODE = 'undefined_object',
                  HINT = 'crm_native attaches to the CRM schema of its design (tables customers, "VC Usage", '
                         'customer_matching_keys, customer_events, customer_audit_log, customer_metrics); '
                         'SELECT * FROM crm_native.required_column lists what it needs.';
    END IF;
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

CREATE FUNCTION crm_native.uninstall(target_schema text DEFAULT 'public')
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
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION 'crm_native.uninstall: schema "%" does not exist', target_schema
            USING ERRCODE = 'invalid_schema_name';
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

COMMENT ON FUNCTION crm_native.install(text) IS
    'Replaces the application''s triggers on target_schema with crm_native''s native ones (idempotent); returns status()';
COMMENT ON FUNCTION crm_native.uninstall(text) IS
    'Drops the native triggers and restores the application triggers install() replaced; returns status()';
COMMENT ON FUNCTION crm_native.status(text) IS
    'Each trigger on the tables crm_native attaches to: its table, implementation (native, plpgsql, ...) and function';

-- ---- src/sql/60_maintenance.sql
-- Maintenance: rebuild the matching keys from the customers' current values.
-- Keys are stored; they depend on the normalizers (ICU, libphonenumber data)
-- and on the GUCs crm_native.default_region / email_provider_rules. After an
-- upgrade of either library, a change of either GUC, or when switching from
-- the plpgsql triggers (whose keys were normalized differently), rebuild them.
-- The native keys trigger rewrites only keys whose raw value changed, so a
-- no-op UPDATE of customers would not do it. Returns the number of keys written.
CREATE FUNCTION crm_native.rebuild_matching_keys(target_schema text DEFAULT 'public',
                                                 customer uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION 'crm_native.rebuild_matching_keys: schema "%" does not exist', target_schema
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    EXECUTE format('DELETE FROM %I.customer_matching_keys WHERE $1 IS NULL OR customer_id = $1',
                   target_schema) USING customer;
    EXECUTE format($q$
        INSERT INTO %1$I.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
        SELECT c.id, c.company_id, k.key_type, k.key_value, k.normalized_value
          FROM %1$I.customers c
         CROSS JOIN LATERAL (VALUES
                ('name',  c.customer_name,  crm_native.normalize_name(c.customer_name)),
                ('email', c.customer_email, crm_native.normalize_email(c.customer_email)),
                ('phone', c.customer_phone, crm_native.normalize_phone(c.customer_phone)))
                AS k (key_type, key_value, normalized_value)
         WHERE k.normalized_value IS NOT NULL
           AND ($1 IS NULL OR c.id = $1)
         ORDER BY c.id, k.key_type$q$, target_schema) USING customer;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

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
    PERFORM crm_native._require_crm_schema('crm_native.verify_metrics', target_schema);
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
        -- (the casts: a domain over each listed type is accepted)
        SELECT coalesce(e.customer_id, m.customer_id)::uuid,
               e.companies[1]::uuid, m.company_id::uuid,
               e.n, m.total_conversations::bigint,
               e.s, m.total_sessions::bigint,
               e.w, m.total_views::bigint,
               e.f::timestamptz, m.first_interaction_at::timestamptz,
               e.l::timestamptz, m.last_interaction_at::timestamptz
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
    -- One customer: its rows read by their own index (customer_id), whatever
    -- the statistics and the conditions row-level security adds (index pins,
    -- docs/tenancy.md; the library that reads them loaded first). All
    -- customers: the plans as before.
    pins text := CASE WHEN customer IS NOT NULL THEN '/* crm_native pins: m=customer_id v=customer_id */' ELSE '' END;
BEGIN
    PERFORM crm_native._require_schema('crm_native.rebuild_metrics', target_schema);
    PERFORM crm_native.version_info();
    EXECUTE format('LOCK TABLE %I.customer_metrics IN SHARE ROW EXCLUSIVE MODE', target_schema);
    EXECUTE format($q$%3$s
        DELETE FROM %1$I.customer_metrics m
         WHERE ($1 IS NULL OR m.customer_id = $1)
           AND NOT EXISTS (SELECT 1 FROM %1$I."VC Usage" v WHERE v.customer_id = m.customer_id%2$s) $q$,
        target_schema, same_company, pins) USING customer;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    EXECUTE format($q$%4$s
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
        target_schema, company_group, conflict_key, pins) USING customer;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN deleted + written;
END
$fn$;

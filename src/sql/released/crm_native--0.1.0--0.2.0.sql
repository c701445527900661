-- crm_native 0.1.0 -> 0.2.0: generated from src/sql/upgrade/0.1.0--0.2.0.sql and the fragments new in 0.2.0, do not edit
-- crm_native 0.1.0 -> 0.2.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.2.0 (UPGRADE_0_2_0_FRAGMENTS) to this file to make
-- crm_native--0.1.0--0.2.0.sql; test/run.d/upgrade.sh proves that an updated
-- 0.1.0 has exactly the objects of a fresh 0.2.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.2.0'" to load this file. \quit

-- 1. The test-only function is no longer in the shipped library.
DROP FUNCTION IF EXISTS crm_native._guard_test(text);

-- 2. crm_native.required_column becomes a view of the column list compiled
--    into the library, the one the triggers themselves check.
DROP TABLE crm_native.required_column;
CREATE FUNCTION crm_native.required_columns()
RETURNS TABLE (ordinal int, table_name text, column_name text, types regtype[])
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_required_columns';

CREATE VIEW crm_native.required_column AS
SELECT ordinal, table_name, column_name, types FROM crm_native.required_columns();

-- 3. The chat UPDATE sync trigger also fires when customer_id or company_id
--    change (a chat must name a live customer of its own company). Re-create
--    it wherever install() attached it, keeping its enabled state and comment.
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_vc_usage_customer_sync_update '
             'BEFORE UPDATE OF customer_name, customer_email, customer_phone, customer_id, company_id ON %1$s '
             'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()'
 WHERE trigger_name = 'trg_vc_usage_customer_sync_update';

DO $upgrade$
DECLARE
    r record;
    ddl text;
BEGIN
    SELECT nt.ddl INTO ddl FROM crm_native.native_trigger nt
     WHERE nt.trigger_name = 'trg_vc_usage_customer_sync_update';
    FOR r IN
        SELECT t.tgrelid::regclass AS rel, t.tgname, t.tgenabled,
               obj_description(t.oid, 'pg_trigger') AS comment
          FROM pg_catalog.pg_trigger t
         WHERE t.tgname = 'trg_vc_usage_customer_sync_update' AND NOT t.tgisinternal
           AND t.tgfoid = 'crm_native.customer_sync()'::regprocedure
           -- not the clones PostgreSQL made on partitions: they cannot be
           -- dropped, and come back with their parent's (fixed after the
           -- 0.2.0 release: the update failed on a partitioned "VC Usage")
           AND t.tgparentid = 0
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
        EXECUTE format(ddl, r.rel);
        IF r.tgenabled <> 'O' THEN
            EXECUTE format('ALTER TABLE %s %s TRIGGER %I', r.rel,
                           CASE r.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                                            ELSE 'ENABLE ALWAYS' END, r.tgname);
        END IF;
        IF r.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', r.tgname, r.rel, r.comment);
        END IF;
    END LOOP;
END
$upgrade$;

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

-- The surviving customer of a merge chain: customer itself when it is live
-- and not merged, else the end of its merged_into_customer_id chain. NULL
-- when the chain ends at a soft-deleted customer, leaves company, reaches a
-- row this role cannot see, loops, or is longer than 64 hops (the sync's
-- rules, docs/customer_sync.md step 3).
CREATE FUNCTION crm_native._merge_survivor(target_schema text, customer uuid, company uuid)
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur uuid := customer;
    nxt uuid;
    deleted timestamptz;
    comp uuid;
    found_row boolean;
BEGIN
    FOR hop IN 1..65 LOOP
        EXECUTE format('SELECT true, c.merged_into_customer_id, c.deleted_at, c.company_id
                          FROM %I.customers c WHERE c.id = $1', target_schema)
           INTO found_row, nxt, deleted, comp USING cur;
        IF found_row IS NULL OR comp IS DISTINCT FROM company THEN
            RETURN NULL;
        END IF;
        IF nxt IS NULL THEN
            RETURN CASE WHEN deleted IS NULL THEN cur END;
        END IF;
        IF nxt = customer THEN
            RETURN NULL;   -- a loop through the start
        END IF;
        cur := nxt;
    END LOOP;
    RETURN NULL;           -- too long (or a loop that does not pass the start)
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
    email_key := crm_native.normalize_email(q);
    phone_key := CASE WHEN NOT is_email THEN crm_native.normalize_phone(q) END;
    try_names := NOT is_email AND NOT (phone_key IS NOT NULL AND q !~ '[[:alpha:]]');
    name_key := CASE WHEN try_names THEN crm_native.normalize_name(q) END;
END
$$;

-- The search statement for target_schema (pg_trgm in schema trgm), with
-- parameters $1 company, $2 the trimmed query, $3 max_results, $4 the email
-- key, $5 the phone key, $6 the name key, $7 target_schema, $8 whether to
-- search names by similarity (crm_native._search_keys). Separate, so
-- that tests and the benchmark EXPLAIN exactly what search_customers runs.
--
-- Each branch uses its own index: each key probe is a plain equality on the
-- three columns of the keys index (company_id, key_type, normalized_value);
-- names use the pg_trgm GIN index on customer_name (WHERE deleted_at IS
-- NULL). A key holder counts when it is live, or merged (then its survivor
-- is returned); name hits are live customers. Only the top max_results
-- unmerged name hits are kept: each is its own survivor, so no better
-- survivor can be cut off; merged name hits (rare) are all resolved.
CREATE FUNCTION crm_native._search_query(target_schema text, trgm text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $f$
    SELECT format($q$
        WITH probes (rank, key_type, key) AS (
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
        ), resolved AS (
            SELECT CASE WHEN h.merged THEN crm_native._merge_survivor($7, h.holder, $1) ELSE h.holder END
                       AS survivor, h.rank, h.matched_by, h.score
              FROM hits h
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

CREATE FUNCTION crm_native.search_customers(company_id uuid, query text, max_results int DEFAULT 20,
                                            target_schema text DEFAULT 'public')
RETURNS TABLE (customer_id uuid, customer_name text, customer_email text, customer_phone text,
               matched_by text, score real)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.search_customers';
    q text := btrim(query, E' \t\r\n\f\v');
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
    last_id      bigint,       -- the highest chat id looked at
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
    RETURN ROW(false, -9223372036854775808, 0, 0, 0, 0, clock_timestamp(), idx)::crm_native.relink_progress;
END
$$;

-- One batch: the next batch_size unlinked chats by id, each "updated" with
-- SET customer_email = customer_email, which runs the native sync's rules
-- (trg_vc_usage_customer_sync_update fires for an UPDATE naming a contact
-- column, and syncs a row that is still unlinked). A row linked meanwhile by
-- someone else is skipped (the WHERE clause is rechecked on its new version).
CREATE FUNCTION crm_native._relink_batch(target_schema text, batch_size int, progress crm_native.relink_progress)
RETURNS crm_native.relink_progress
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn constant text := 'crm_native.relink_chats';
    p crm_native.relink_progress := progress;
    ids bigint[];
    linked_to uuid[];
    batch_last bigint;
    n_seen bigint;
    n_linked bigint;
    n_created bigint;
    secs double precision;
BEGIN
    -- The batch's ids first (an index scan: the unlinked-chats index or the
    -- primary key, from the last id on), then the UPDATE by primary key.
    EXECUTE format('SELECT array_agg(s.id ORDER BY s.id) FROM (SELECT v.id::bigint AS id FROM %I.%I v
                     WHERE v.customer_id IS NULL AND v.id > $1 ORDER BY v.id LIMIT $2) s',
                   target_schema, 'VC Usage')
       INTO ids USING p.last_id, batch_size;
    n_seen := coalesce(cardinality(ids), 0);
    IF n_seen > 0 THEN
        batch_last := ids[n_seen];
        EXECUTE format('WITH relinked AS (
                            UPDATE %1$I.%2$I u SET customer_email = u.customer_email
                             WHERE u.id = ANY ($1) AND u.customer_id IS NULL
                            RETURNING u.customer_id)
                        SELECT array_agg(DISTINCT r.customer_id) FILTER (WHERE r.customer_id IS NOT NULL),
                               count(r.customer_id)
                          FROM relinked r', target_schema, 'VC Usage')
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

    -- Lock both customers, lower id first (two merges of the same pair never
    -- deadlock), with the lock the sync takes on the customer it links to:
    -- a chat being linked to either one finishes first, a later one waits
    -- for the merge and then finds the survivor.
    lock_sql := format('SELECT c.id, c.company_id, c.deleted_at, c.merged_into_customer_id, to_jsonb(c) AS data
                          FROM %I.customers c WHERE c.id = $1 FOR NO KEY UPDATE OF c', target_schema);
    IF source < target THEN
        EXECUTE lock_sql INTO s USING source;
        EXECUTE lock_sql INTO t USING target;
    ELSE
        EXECUTE lock_sql INTO t USING target;
        EXECUTE lock_sql INTO s USING source;
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
    EXECUTE format('UPDATE %I.%I SET customer_id = $2 WHERE customer_id = $1', target_schema, 'VC Usage')
      USING source, target;
    GET DIAGNOSTICS chats_moved = ROW_COUNT;
    IF to_regclass(format('%I.customer_conversation_summaries', target_schema)) IS NOT NULL THEN
        EXECUTE format('UPDATE %I.customer_conversation_summaries SET customer_id = $2 WHERE customer_id = $1',
                       target_schema) USING source, target;
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
                      FROM %1$I.customers s WHERE t.id = $2 AND s.id = $1',
                   target_schema, coalesce(set_list || ',', ''))
      USING source, target;

    -- 3. Matching keys: the source's keys the target does not hold move to
    --    it (so a chat with the source's email or phone finds the target);
    --    the rest (duplicates) go.
    EXECUTE format('UPDATE %1$I.customer_matching_keys k SET customer_id = $2
                     WHERE k.customer_id = $1
                       AND NOT EXISTS (SELECT FROM %1$I.customer_matching_keys d
                                        WHERE d.customer_id = $2 AND d.key_type = k.key_type
                                          AND d.normalized_value = k.normalized_value)', target_schema)
      USING source, target;
    GET DIAGNOSTICS keys_moved = ROW_COUNT;
    EXECUTE format('DELETE FROM %I.customer_matching_keys WHERE customer_id = $1', target_schema) USING source;
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
                     WHERE id = $1', target_schema)
      USING source, target;
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

INSERT INTO crm_native.required_index VALUES
 (1, 'customer_matching_keys', '{company_id,key_type,normalized_value}', false, false, NULL,
  'customer_sync: key lookups within the chat''s company (an index not leading with company_id crosses tenants and scans)',
  'CREATE INDEX CONCURRENTLY idx_matching_keys_normalized ON %1$s.customer_matching_keys USING btree (company_id, key_type, normalized_value)'),
 (2, 'customer_matching_keys', '{customer_id}', true, false, NULL,
  'matching_keys_sync: the rewrite of a customer''s keys (and the ON DELETE CASCADE)',
  'CREATE INDEX CONCURRENTLY idx_matching_keys_customer ON %1$s.customer_matching_keys USING btree (customer_id)'),
 (3, 'customer_metrics', '{customer_id}', true, true, NULL,
  'metrics_*: INSERT ... ON CONFLICT (customer_id) needs a unique index on customer_id alone (the metrics key)',
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
       AND (NOT must_be_unique OR (i.indisunique AND i.indnkeyatts = cardinality(cols)
                                   AND i.indpred IS NULL AND i.indexprs IS NULL))
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
BEGIN
    SELECT oid INTO nsp FROM pg_namespace WHERE nspname = target_schema;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'crm_native.verify_schema: schema "%" does not exist', target_schema
            USING ERRCODE = 'invalid_schema_name';
    END IF;

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
                 WHERE x.relid = e.relid AND x.signature = e.signature AND (NOT e.is_unique OR x.is_unique)
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
    --    a user, otherwise scans the whole referencing table).
    RETURN QUERY
    WITH fk AS (
        SELECT con.conname, con.conrelid, con.confrelid, c.relname AS tbl,
               array_agg(a.attname::text ORDER BY k.n) AS cols
          FROM pg_constraint con
          JOIN pg_class c ON c.oid = con.conrelid
         CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k (attnum, n)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
         WHERE con.contype = 'f' AND c.relnamespace = nsp
         GROUP BY con.oid, con.conname, con.conrelid, con.confrelid, c.relname)
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
             CROSS JOIN LATERAL (VALUES
                    ('name', c.customer_name::text, crm_native.normalize_name(c.customer_name)),
                    ('email', c.customer_email::text, crm_native.normalize_email(c.customer_email)),
                    ('phone', c.customer_phone::text, crm_native.normalize_phone(c.customer_phone)))
                    AS k (key_type, key_value, normalized_value)
             WHERE k.normalized_value IS NOT NULL),
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

-- ---- install() as src/sql/50_install.sql defines it (0.2.0: it warns for missing dependencies, 80_observe.sql)
CREATE OR REPLACE FUNCTION crm_native.install(target_schema text DEFAULT 'public')
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

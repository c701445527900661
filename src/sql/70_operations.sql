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
-- company's shard. The name is cast to text for similarity() and the
-- operator: pg_trgm's schema may be a tenant's, and an overload there for
-- a varchar column would otherwise win (found by an independent review).
-- Only the top max_results
-- unmerged name hits are kept: each is its own survivor, so no better
-- survivor can be cut off; merged name hits (rare) are all resolved.
--
-- Index pins (docs/tenancy.md, "Index pins"): the statement starts with the
-- pins comment, so the planner hook offers each scan only the index it was
-- written for, whatever the statistics (never-analyzed tables) and the
-- conditions row-level security adds (company_id = current_company_id()
-- made a tenant's btree index, idx_customers_lifecycle, serve the name
-- branch and the final lookup by id: every customer of the tenant read; found
-- by an independent tester): k the keys index, c the primary key, n a GIN
-- index on customer_name (the trigram indexes, WHERE deleted_at IS NULL,
-- which the branch states; not an application's btree on the name, which
-- could only be read whole for %). With pg_trgm's similarity_threshold at 0
-- the trigram index returns only names sharing a trigram with the query,
-- where % alone accepts every name (pg_trgm's own behaviour with its index).
-- Otherwise the pins change no row the statement returns.
CREATE FUNCTION crm_native._search_query(target_schema text, trgm text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $f$
    SELECT format($q$/* crm_native pins: no_seqscan_but_bitmap k=company_id,key_type,normalized_value c=id%4$s */
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
            SELECT n.id AS holder, n.merged_into_customer_id IS NOT NULL AS merged,
                   %2$I.similarity(n.customer_name::text, $2::text) AS score
              FROM %1$I.customers n
             WHERE $8 AND n.deleted_at IS NULL AND n.customer_name::text OPERATOR(%3$s) $2::text
               AND (n.company_id = $1) IS TRUE   -- a filter: no btree on company_id instead of the GIN
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
             ORDER BY r.survivor, r.rank, r.score DESC, r.matched_by = 'similar_name'  -- the exact name key first
        )
        SELECT c.id::uuid, c.customer_name::text, c.customer_email::text, c.customer_phone::text,
               b.matched_by::text, b.score
          FROM best b
          JOIN %1$I.customers c ON c.id = b.survivor
         WHERE c.company_id = $1 AND c.deleted_at IS NULL
         ORDER BY b.rank, b.score DESC, c.id
         LIMIT $3$q$, target_schema, trgm, o.operator,
           -- the names' scan pinned to an index on customer_name, unless
           -- row-level security applies and the operator is pg_trgm's (not
           -- LEAKPROOF: no index can evaluate it, and the scan filters the
           -- tenant's customers, docs/operations.md)
           CASE WHEN o.operator = 'crm_native.%'
                     OR NOT row_security_active(format('%I.customers', target_schema))
                THEN ' n:gin=customer_name' ELSE '' END)
      FROM (SELECT crm_native._search_name_operator(target_schema, trgm) AS operator) o
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
    PERFORM crm_native._require_crm_schema(fn, target_schema);
    -- companies only when it is a table (not a view of the schema owner's)
    IF (SELECT c.relkind IN ('r', 'p') FROM pg_class c
         WHERE c.oid = to_regclass(format('%I.companies', target_schema))) THEN
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

    -- (_search_keys runs the library's normalizers: the library, and its
    -- planner hook that reads the search statement's index pins, is loaded
    -- before the statement is planned)
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
    -- primary key, from the last id on), then the UPDATE by primary key of
    -- the chats the sync would link (_sync_links_contact(): a chat with no
    -- contact value that gives a key is not rewritten by every run). The
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
                                   AND crm_native._sync_links_contact(u.customer_email::text,
                                                                      u.customer_phone::text, u.customer_name::text)
                                RETURNING u.customer_id)
                            SELECT array_agg(DISTINCT r.customer_id) FILTER (WHERE r.customer_id IS NOT NULL),
                                   count(r.customer_id)
                              FROM relinked r', target_schema, 'VC Usage', id_type);
        BEGIN
            EXECUTE relink_sql INTO linked_to, n_linked USING ids;
        EXCEPTION
            -- transient, or nothing a single chat causes (resources, the
            -- system, privileges, a read-only transaction or a standby):
            -- the batch fails, the next run tries again
            WHEN serialization_failure OR deadlock_detected OR lock_not_available OR insufficient_resources
                 OR program_limit_exceeded OR system_error OR operator_intervention OR insufficient_privilege
                 OR read_only_sql_transaction THEN
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
                             OR operator_intervention OR insufficient_privilege OR read_only_sql_transaction THEN
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
                             'A chat left unlinked has no email, phone or name that gives a matching key, or one '
                             'that fails to normalize (such chats are not written), or a warning above says why '
                             'its sync failed.'
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
    foreign_chats bigint;
    foreign_summaries bigint;
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
    -- Every statement below that reads a table starts with an index pins
    -- comment (docs/tenancy.md, "Index pins"): each reads the rows of the two
    -- customers by their own index (primary key, customer_id), whatever the
    -- statistics and the conditions row-level security adds, which made a
    -- tenant's index (idx_customers_lifecycle, on company_id) serve the row
    -- locks and updates by id: every customer of the tenant read per merge
    -- (found by an independent tester). The pins are read by the library's
    -- planner hook: load the library first (calling any of its C functions
    -- does), for a session that has not used it yet.
    PERFORM crm_native.version_info();

    -- The company first (unlocked): every statement below names it, which
    -- keeps each one within the company (on Citus: on one shard).
    EXECUTE format('/* crm_native pins: no_seqscan c=id */ SELECT c.company_id FROM %I.customers c WHERE c.id = $1',
                   target_schema) INTO company USING target;
    EXECUTE format('/* crm_native pins: no_seqscan c=id */ SELECT c.company_id FROM %I.customers c WHERE c.id = $1',
                   target_schema) INTO s_company USING source;
    IF s_company IS NOT NULL AND company IS NOT NULL AND s_company <> company THEN
        RAISE EXCEPTION '%: customers % and % belong to different companies', fn, source, target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    company := coalesce(company, s_company);  -- one of them missing: reported below
    -- Lock both customers, lower id first (two merges of the same pair never
    -- deadlock), with the lock the sync takes on the customer it links to:
    -- a chat being linked to either one finishes first, a later one waits
    -- for the merge and then finds the survivor.
    lock_sql := format('/* crm_native pins: no_seqscan c=id */ SELECT c.id, c.company_id, c.deleted_at, c.merged_into_customer_id, to_jsonb(c) AS data
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

    -- Another company's chats linked to the source (only the plpgsql
    -- triggers' old hole links them) would stay on it: the moves below name
    -- the company (on Citus: one shard). Refused, changing nothing (they
    -- stayed on the merged customer; found by an independent tester).
    EXECUTE format('/* crm_native pins: v=customer_id */ SELECT count(*) FROM %I.%I v
                     WHERE v.customer_id = $1 AND v.company_id <> $2', target_schema, 'VC Usage')
       INTO foreign_chats USING source, company;
    foreign_summaries := 0;
    IF to_regclass(format('%I.customer_conversation_summaries', target_schema)) IS NOT NULL THEN
        EXECUTE format('/* crm_native pins: s=customer_id */ SELECT count(*) FROM %I.customer_conversation_summaries s
                         WHERE s.customer_id = $1 AND s.company_id <> $2', target_schema)
           INTO foreign_summaries USING source, company;
    END IF;
    IF foreign_chats > 0 OR foreign_summaries > 0 THEN
        RAISE EXCEPTION '%: customer % has chats or conversation summaries of another company', fn, source
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('%s chats, %s conversation summaries; a merge moves those of the customer''s own company only.',
                                  foreign_chats, foreign_summaries),
                  HINT = concat_ws(' ',
                      CASE WHEN foreign_chats > 0 THEN
                          format('Unlink the chats first (UPDATE %I.%I SET customer_id = NULL WHERE customer_id = %L '
                                 'AND company_id <> %L; CALL crm_native.relink_chats() then links them within their own company).',
                                 target_schema, 'VC Usage', source, company) END,
                      CASE WHEN foreign_summaries > 0 THEN
                          format('Move the summaries to a customer of their own company, or delete them (%I.customer_conversation_summaries '
                                 'WHERE customer_id = %L AND company_id <> %L).', target_schema, source, company) END);
    END IF;

    -- 1. The chats: an UPDATE of customer_id (checked by the sync trigger,
    --    counted by the metrics trigger: the source's metrics row goes, the
    --    target's becomes the recomputation over both histories).
    EXECUTE format('/* crm_native pins: v=customer_id */ UPDATE %I.%I v SET customer_id = $2
                     WHERE v.customer_id = $1 AND v.company_id = $3', target_schema, 'VC Usage')
      USING source, target, company;
    GET DIAGNOSTICS chats_moved = ROW_COUNT;
    IF to_regclass(format('%I.customer_conversation_summaries', target_schema)) IS NOT NULL THEN
        EXECUTE format('/* crm_native pins: s=customer_id */ UPDATE %I.customer_conversation_summaries s
                         SET customer_id = $2 WHERE s.customer_id = $1 AND s.company_id = $3', target_schema) USING source, target, company;
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
    EXECUTE format('/* crm_native pins: no_seqscan t=id s=id */ UPDATE %1$I.customers t SET %2$s updated_at = now()
                      FROM %1$I.customers s
                     WHERE t.id = $2 AND s.id = $1 AND t.company_id = $3 AND s.company_id = $3',
                   target_schema, coalesce(set_list || ',', ''))
      USING source, target, company;

    -- 3. Matching keys: the source's keys the target does not hold move to
    --    it (so a chat with the source's email or phone finds the target);
    --    the rest (duplicates) go.
    EXECUTE format('/* crm_native pins: no_seqscan k=customer_id d=customer_id */
                    UPDATE %1$I.customer_matching_keys k SET customer_id = $2
                     WHERE k.customer_id = $1 AND k.company_id = $3
                       AND NOT EXISTS (SELECT FROM %1$I.customer_matching_keys d
                                        WHERE d.customer_id = $2 AND d.company_id = $3 AND d.key_type = k.key_type
                                          AND d.normalized_value = k.normalized_value)', target_schema)
      USING source, target, company;
    GET DIAGNOSTICS keys_moved = ROW_COUNT;
    EXECUTE format('/* crm_native pins: no_seqscan k=customer_id */ DELETE FROM %I.customer_matching_keys k
                     WHERE k.customer_id = $1 AND k.company_id = $2', target_schema)
      USING source, company;
    GET DIAGNOSTICS keys_dropped = ROW_COUNT;

    -- 4. The merge log, and an event on each customer. merged_at is the
    --    clock's time, not the transaction's: the rebuild replays the
    --    merges in that order, and merges of one transaction (a source
    --    merged, unmerged and merged again) tied on now() and were ordered
    --    by their random ids (found by an independent review).
    EXECUTE format('INSERT INTO %I.customer_merge_log
                        (company_id, source_customer_id, target_customer_id, merged_by_user_id, merge_reason, merged_data,
                         merged_at)
                    VALUES ($1, $2, $3, $4, $5, $6, pg_catalog.clock_timestamp()) RETURNING id', target_schema)
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
    EXECUTE format('/* crm_native pins: no_seqscan c=id */ UPDATE %I.customers c
                       SET merged_into_customer_id = $2, deleted_at = now(), updated_at = now()
                     WHERE c.id = $1 AND c.company_id = $3', target_schema)
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

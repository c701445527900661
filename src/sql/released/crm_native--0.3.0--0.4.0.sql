-- crm_native 0.3.0 -> 0.4.0: generated from src/sql/upgrade/0.3.0--0.4.0.sql and src/sql/*.sql, do not edit
-- crm_native 0.3.0 -> 0.4.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.4.0 and the functions 0.4.0 changed to this
-- file to make crm_native--0.3.0--0.4.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.3.0 has exactly the objects of a fresh 0.4.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.4.0'" to load this file. \quit

-- Nothing is dropped or renamed in 0.4.0: it adds the LEAKPROOF trigram
-- operator crm_native.% and its GIN operator class
-- crm_native.gin_trgm_leakproof_ops (65_name_search.sql), which
-- search_customers() uses when an index of that class covers
-- customers.customer_name.

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

-- ---- crm_native._search_query() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native._search_query(target_schema text, trgm text)
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

-- ---- crm_native.verify_operations() as src/sql/*.sql defines it
CREATE OR REPLACE FUNCTION crm_native.verify_operations(target_schema text DEFAULT 'public')
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

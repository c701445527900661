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

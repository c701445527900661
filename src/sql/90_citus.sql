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

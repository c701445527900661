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

-- The keys of merged-away customers (merged_into_customer_id and deleted_at
-- set, as merge_customers() leaves a source), where they belong:
-- merge_customers() moves the source's keys that the survivor lacks to the
-- survivor, because the sync never matches a soft-deleted holder (the
-- plpgsql rule). So they belong to the live end of the customer's merge
-- chain (same company, at most 64 hops, the sync's chain rules), less the
-- keys the survivor's own values give; a customer whose chain has no such
-- end keeps its own. One row per contributor and key (the caller keeps the
-- oldest contributor's row of a duplicate). owners: only the keys held by
-- these customers (NULL: all). Used by rebuild_matching_keys() and health(),
-- so that neither undoes nor reports what a merge did (it did both: found
-- by an independent tester). The chain is followed one primary-key read
-- per hop, each with the company (a single-shard query on Citus); merged
-- customers are few.
CREATE FUNCTION crm_native._merged_keys(target_schema text, owners uuid[] DEFAULT NULL)
RETURNS TABLE (customer_id uuid, company_id uuid, key_type text, key_value text, normalized_value text,
               contributor_created_at timestamptz, contributor uuid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    merged record;
    hop record;
    holder uuid;
    hops int;
    found_hop boolean;
    hop_rows bigint;
BEGIN
    FOR merged IN EXECUTE format(
        'SELECT c.id, c.company_id, c.merged_into_customer_id, c.created_at,
                c.customer_name, c.customer_email, c.customer_phone
           FROM %I.customers c
          WHERE c.merged_into_customer_id IS NOT NULL AND c.deleted_at IS NOT NULL
          ORDER BY c.created_at, c.id', target_schema)
    LOOP
        holder := merged.merged_into_customer_id;
        hops := 1;
        LOOP
            EXECUTE format('SELECT c.merged_into_customer_id AS next, c.deleted_at, c.customer_name,
                                   c.customer_email, c.customer_phone
                              FROM %I.customers c WHERE c.id = $1 AND c.company_id = $2', target_schema)
               INTO hop USING holder, merged.company_id;
            GET DIAGNOSTICS hop_rows = ROW_COUNT;  -- EXECUTE leaves FOUND as it was
            found_hop := hop_rows > 0;
            EXIT WHEN NOT found_hop OR hop.next IS NULL OR hops >= 64;
            holder := hop.next;
            hops := hops + 1;
        END LOOP;
        IF NOT found_hop OR hop.next IS NOT NULL OR hop.deleted_at IS NOT NULL THEN
            holder := merged.id;  -- no live end in the company: its own keys stay its own
        END IF;
        CONTINUE WHEN owners IS NOT NULL AND NOT holder = ANY (owners);
        RETURN QUERY
            SELECT holder, merged.company_id::uuid, k.key_type, k.key_value, k.normalized_value,
                   merged.created_at::timestamptz, merged.id::uuid  -- the columns may be domains
              FROM crm_native._customer_keys(merged.customer_name, merged.customer_email, merged.customer_phone) k
             WHERE holder = merged.id
                OR NOT EXISTS (SELECT FROM crm_native._customer_keys(hop.customer_name, hop.customer_email,
                                                                     hop.customer_phone) own
                                WHERE own.key_type = k.key_type AND own.normalized_value = k.normalized_value);
    END LOOP;
END
$$;

CREATE FUNCTION crm_native.rebuild_matching_keys(target_schema text DEFAULT 'public',
                                                 customer uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
    merged_written bigint;
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
    -- each customer's own keys; a merged-away customer's go where
    -- _merged_keys() puts them
    EXECUTE format($q$
        INSERT INTO %1$I.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
        SELECT c.id, c.company_id, k.key_type, k.key_value, k.normalized_value
          FROM %1$I.customers c
         CROSS JOIN LATERAL crm_native._customer_keys(c.customer_name, c.customer_email, c.customer_phone) k
         WHERE ($1 IS NULL OR c.id = $1)
           AND NOT (c.merged_into_customer_id IS NOT NULL AND c.deleted_at IS NOT NULL)
         ORDER BY c.id, k.key_type$q$, target_schema) USING customer;
    GET DIAGNOSTICS written = ROW_COUNT;
    EXECUTE format($q$
        INSERT INTO %1$I.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
        SELECT DISTINCT ON (m.customer_id, m.key_type, m.normalized_value)
               m.customer_id, m.company_id, m.key_type, m.key_value, m.normalized_value
          FROM crm_native._merged_keys(%2$L, CASE WHEN $1 IS NULL THEN NULL ELSE ARRAY[$1] END) m
         ORDER BY m.customer_id, m.key_type, m.normalized_value, m.contributor_created_at, m.contributor$q$,
                   target_schema, target_schema) USING customer;
    GET DIAGNOSTICS merged_written = ROW_COUNT;
    RETURN written + merged_written;
END
$$;

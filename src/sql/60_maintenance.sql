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

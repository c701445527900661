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
    PERFORM crm_native._require_schema('crm_native.rebuild_matching_keys', target_schema);
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

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

-- Each definition as pg_get_triggerdef() writes it (install() and
-- verify_schema() compare the two: _trigger_as_registered()).
INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl) VALUES
    ('trg_customers_matching_keys_sync', 'customers', 'trg_customers_matching_keys_sync',
     'CREATE TRIGGER trg_customers_matching_keys_sync AFTER INSERT OR UPDATE ON %1$s'
     ' FOR EACH ROW EXECUTE FUNCTION crm_native.matching_keys_sync()'),
    ('trg_customers_audit_log', 'customers', 'trg_customers_audit_log',
     'CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR DELETE OR UPDATE ON %1$s'
     ' FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log()'),
    ('trg_customers_lifecycle_tracking', 'customers', 'trg_customers_lifecycle_tracking',
     'CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON %1$s'
     ' FOR EACH ROW WHEN ((old.lifecycle_stage IS DISTINCT FROM new.lifecycle_stage))'
     ' EXECUTE FUNCTION crm_native.lifecycle_tracking()');

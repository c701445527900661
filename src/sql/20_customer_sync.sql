-- Customer sync from chat conversations (docs/customer_sync.md).

-- BEFORE INSERT / BEFORE UPDATE, FOR EACH ROW on "VC Usage". The UPDATE
-- trigger fires for every UPDATE: it syncs when the statement sets a contact
-- column (as the application's BEFORE UPDATE OF customer_name,
-- customer_email, customer_phone did) and checks the link whenever
-- customer_id or company_id changed, also by an application's BEFORE
-- trigger in an UPDATE that names neither (an UPDATE OF list missed that;
-- found by an independent tester). SECURITY INVOKER: it reads and
-- writes as the user whose statement fired it, so the application's
-- privileges and row-level security apply to every query it makes.
CREATE FUNCTION crm_native.customer_sync() RETURNS trigger
    AS 'MODULE_PATHNAME', 'crm_customer_sync'
    LANGUAGE C;

INSERT INTO crm_native.native_trigger (trigger_name, table_name, replaces, ddl) VALUES
    ('trg_vc_usage_customer_sync_insert', 'VC Usage', 'trg_vc_usage_customer_sync_insert',
     'CREATE TRIGGER trg_vc_usage_customer_sync_insert BEFORE INSERT ON %1$s '
     'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()'),
    ('trg_vc_usage_customer_sync_update', 'VC Usage', 'trg_vc_usage_customer_sync_update',
     'CREATE TRIGGER trg_vc_usage_customer_sync_update '
     'BEFORE UPDATE ON %1$s '
     'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()');

-- After the functions 0.8.0 defines (the Makefile appends this file last).
-- A trigger on the registry (any role granted TRIGGER on it, or write
-- access as 0.7.0's docs asked, could create one) would run as the
-- extension's owner whenever install() or uninstall() write it: the update
-- refuses it as the writers do (the script is one transaction).
SELECT crm_native._require_registries_untriggered();
-- The registry writers are the extension owner's (50_install.sql): nobody
-- else may call them unless a superuser grants it.
REVOKE ALL ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                       crm_native._record_installed_schema(text), crm_native._forget_installed_schema(text)
  FROM PUBLIC;

-- The schemas install() put the native triggers on: every schema whose CRM
-- tables carry a registered native trigger, or that has records.
INSERT INTO crm_native.installed_schema (schema_name)
SELECT n.nspname FROM pg_catalog.pg_namespace n
 WHERE crm_native._has_native_triggers(n.nspname::pg_catalog.text)
UNION
SELECT rt.schema_name FROM crm_native.replaced_trigger rt
 WHERE pg_catalog.to_regnamespace(pg_catalog.quote_ident(rt.schema_name)) IS NOT NULL;

-- The chat UPDATE sync trigger fires for every UPDATE (20_customer_sync.sql):
-- an application's BEFORE UPDATE trigger that changed customer_id or
-- company_id in an UPDATE naming neither escaped the link check. Re-created
-- wherever install() attached it, keeping its enabled state; its clones on
-- partitions come back with it, and each gets its own state back (one
-- disabled on a single partition stayed disabled; found by an independent
-- tester).
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_vc_usage_customer_sync_update BEFORE UPDATE ON %1$s '
             'FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync()'
 WHERE trigger_name = 'trg_vc_usage_customer_sync_update';
DO $recreate$
DECLARE
    clone record;
    clones jsonb;
BEGIN
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('rel', t.tgrelid::pg_catalog.regclass::pg_catalog.text,
                                                              'enabled', t.tgenabled::pg_catalog.text))
      INTO clones
      FROM pg_catalog.pg_trigger t
     WHERE t.tgname OPERATOR(pg_catalog.=) 'trg_vc_usage_customer_sync_update' AND NOT t.tgisinternal
       AND t.tgparentid OPERATOR(pg_catalog.<>) 0
       AND t.tgfoid OPERATOR(pg_catalog.=) 'crm_native.customer_sync()'::pg_catalog.regprocedure;
    PERFORM crm_native._create_native_trigger(nt, t.tgrelid::pg_catalog.regclass, t.tgnargs OPERATOR(pg_catalog.=) 1)
       FROM crm_native.native_trigger nt
       JOIN pg_catalog.pg_trigger t ON t.tgname OPERATOR(pg_catalog.=) nt.trigger_name AND NOT t.tgisinternal
                                   AND t.tgparentid OPERATOR(pg_catalog.=) 0
      WHERE nt.trigger_name OPERATOR(pg_catalog.=) 'trg_vc_usage_customer_sync_update'
        AND t.tgfoid OPERATOR(pg_catalog.=) 'crm_native.customer_sync()'::pg_catalog.regprocedure;
    FOR clone IN
        SELECT c.rel, c.enabled
          FROM pg_catalog.jsonb_to_recordset(COALESCE(clones, '[]'::pg_catalog.jsonb)) AS c (rel text, enabled text)
          JOIN pg_catalog.pg_trigger t ON t.tgrelid OPERATOR(pg_catalog.=) c.rel::pg_catalog.regclass
                                      AND t.tgname OPERATOR(pg_catalog.=) 'trg_vc_usage_customer_sync_update'
         WHERE t.tgenabled::pg_catalog.text OPERATOR(pg_catalog.<>) c.enabled
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s %s TRIGGER trg_vc_usage_customer_sync_update', clone.rel,
                                  CASE clone.enabled WHEN 'O' THEN 'ENABLE' WHEN 'D' THEN 'DISABLE'
                                                     WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END);
    END LOOP;
END
$recreate$;

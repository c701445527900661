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

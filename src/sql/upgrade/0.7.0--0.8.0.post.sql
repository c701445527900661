-- After the functions 0.8.0 defines (the Makefile appends this file last).
-- The registry writers are the extension owner's (50_install.sql): nobody
-- else may call them unless a superuser grants it.
REVOKE ALL ON FUNCTION crm_native._record_replaced_trigger(oid), crm_native._forget_replaced_trigger(text, text, text),
                       crm_native._record_installed_schema(text), crm_native._forget_installed_schema(text)
  FROM PUBLIC;

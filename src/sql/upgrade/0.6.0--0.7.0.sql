-- crm_native 0.6.0 -> 0.7.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.7.0 and the functions 0.7.0 changed to this
-- file to make crm_native--0.6.0--0.7.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.6.0 has exactly the objects of a fresh 0.7.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.7.0'" to load this file. \quit

-- install() and verify_schema() compare a native trigger's definition with
-- the registry's (_trigger_as_registered()): a trigger an older version
-- created otherwise (a database restored from a 0.1.0 dump kept a chat
-- UPDATE trigger that did not fire for customer_id and company_id) is
-- reported and created again. Two registry texts are rewritten the way
-- pg_get_triggerdef() writes them; the triggers themselves are unchanged.
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR DELETE OR UPDATE ON %1$s'
             ' FOR EACH ROW EXECUTE FUNCTION crm_native.audit_log()'
 WHERE trigger_name = 'trg_customers_audit_log';
UPDATE crm_native.native_trigger
   SET ddl = 'CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON %1$s'
             ' FOR EACH ROW WHEN ((old.lifecycle_stage IS DISTINCT FROM new.lifecycle_stage))'
             ' EXECUTE FUNCTION crm_native.lifecycle_tracking()'
 WHERE trigger_name = 'trg_customers_lifecycle_tracking';

-- relink_chats() links a batch chat by chat when the batch fails, leaving a
-- chat that cannot be linked with a warning (_relink_batch, below); it
-- counts the customers it created with this helper, since the batches now
-- run in subtransactions.
CREATE FUNCTION crm_native._written_here(xmin xid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'crm_written_here' LANGUAGE C STRICT STABLE;

-- Maintenance, health() and search read keys with _matching_key(), which
-- gives NULL where the keys trigger writes no key (a key a LATIN1 database
-- cannot store), instead of failing for the whole database.
CREATE FUNCTION crm_native._matching_key(key_type text, value text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_matching_key' LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- crm_native 0.4.0 -> 0.5.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.5.0 and the functions 0.5.0 changed to this
-- file to make crm_native--0.4.0--0.5.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.4.0 has exactly the objects of a fresh 0.5.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.5.0'" to load this file. \quit

-- 0.5.0 attaches the metrics INSERT, UPDATE and DELETE triggers to each
-- partition of a partitioned "VC Usage" as well (40_metrics.sql): a
-- statement fires the statement triggers of the table it names only. The
-- registry says which triggers go on partitions, and their DDL takes the
-- function's arguments as %2$s. A schema installed under 0.4.0 gets the
-- partition triggers from the next install() call (verify_schema() lists
-- the ones missing).
ALTER TABLE crm_native.native_trigger ADD COLUMN on_partitions boolean NOT NULL DEFAULT false;
UPDATE crm_native.native_trigger
   SET ddl = replace(ddl, 'EXECUTE FUNCTION crm_native.' || f || '()', 'EXECUTE FUNCTION crm_native.' || f || '(%2$s)'),
       on_partitions = true
  FROM (VALUES ('trg_vc_usage_metrics_refresh_ins', 'metrics_insert'),
               ('trg_vc_usage_metrics_refresh_upd', 'metrics_update'),
               ('trg_vc_usage_metrics_refresh_del', 'metrics_delete')) AS m (trigger_name, f)
 WHERE native_trigger.trigger_name = m.trigger_name;

-- The enabled-state helper takes the table (a partition may be in any schema).
DROP FUNCTION crm_native._set_trigger_enabled(text, text, text, "char");

-- The chat id may be any of the usual key types (bigint, integer, uuid,
-- text, varchar; NOT NULL): relink_chats carries the last id it looked at
-- as text.
ALTER TYPE crm_native.relink_progress ALTER ATTRIBUTE last_id TYPE text;

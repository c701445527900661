-- crm_native 0.5.0 -> 0.6.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.6.0 and the functions 0.6.0 changed to this
-- file to make crm_native--0.5.0--0.6.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.5.0 has exactly the objects of a fresh 0.6.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.6.0'" to load this file. \quit

-- 0.6.0 gives a partition of "VC Usage" created or attached after install()
-- the metrics triggers at once, from the event trigger of
-- 55_partition_triggers.sql; install() and that event trigger share
-- _add_partition_triggers(). Nothing changes for a schema installed under
-- 0.5.0: its partitions already have the triggers (or verify_schema() lists
-- them, and install() adds them, as before).

-- The metrics trigger functions lose their SET clauses (search_path,
-- enable_seqscan, enable_bitmapscan): those applied to everything the
-- triggers' writes fire, an application's trigger on customer_metrics or a
-- row-level security policy function that relies on the session's
-- search_path. The statements now qualify every name and are planned with
-- the two scan settings off (40_metrics.sql).
ALTER FUNCTION crm_native.metrics_insert() RESET ALL;
ALTER FUNCTION crm_native.metrics_update() RESET ALL;
ALTER FUNCTION crm_native.metrics_delete() RESET ALL;
ALTER FUNCTION crm_native.metrics_truncate() RESET ALL;

-- _partitions() takes the partition to start below (the event trigger's new
-- table, so that it locks no other partition); the two-argument one goes,
-- else a two-argument call would be ambiguous.
DROP FUNCTION crm_native._partitions(text, text);

-- What the triggers expect of the schema is readable by every role: a
-- table owner who is not a superuser calls install() with USAGE on
-- crm_native and the documented grants on replaced_trigger only.
GRANT SELECT ON crm_native.required_column, crm_native.expected_index, crm_native.required_index TO PUBLIC;

-- crm_native 0.2.0 -> 0.3.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.3.0 and the functions 0.3.0 changed to this
-- file to make crm_native--0.2.0--0.3.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.2.0 has exactly the objects of a fresh 0.3.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.3.0'" to load this file. \quit

-- Nothing is dropped or renamed in 0.3.0: it adds crm_native.citus_problems()
-- (90_citus.sql), which install() now consults, and status(), install(),
-- uninstall(), rebuild_matching_keys() and verify_schema() check their schema
-- argument through crm_native._require_schema() (same message and SQLSTATE).

-- verify_schema()/health() accept a unique key with company_id added (Citus).
UPDATE crm_native.required_index
   SET needed_by = 'metrics_*: INSERT ... ON CONFLICT needs a unique index on customer_id (on Citus: customer_id, company_id)'
 WHERE ordinal = 3;

-- search_customers() follows merge chains in its statement (a recursive CTE),
-- so that on Citus it runs on the company's shard.
DROP FUNCTION crm_native._merge_survivor(text, uuid, uuid);

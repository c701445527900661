-- crm_native 0.7.0 -> 0.8.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.8.0 and the functions 0.8.0 changed to this
-- file to make crm_native--0.7.0--0.8.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.7.0 has exactly the objects of a fresh 0.8.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.8.0'" to load this file. \quit

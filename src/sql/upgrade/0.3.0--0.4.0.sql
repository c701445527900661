-- crm_native 0.3.0 -> 0.4.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.4.0 and the functions 0.4.0 changed to this
-- file to make crm_native--0.3.0--0.4.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.3.0 has exactly the objects of a fresh 0.4.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.4.0'" to load this file. \quit

-- Nothing is dropped or renamed in 0.4.0: it adds the LEAKPROOF trigram
-- operator crm_native.% and its GIN operator class
-- crm_native.gin_trgm_leakproof_ops (65_name_search.sql), which
-- search_customers() uses when an index of that class covers
-- customers.customer_name.

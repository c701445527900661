-- crm_native.trigger_stats without shared_preload_libraries (the test
-- cluster does not preload crm_native): the view and the functions raise an
-- error that says what is missing, and the triggers run and count nothing.
\set VERBOSITY default
SELECT current_setting('shared_preload_libraries') AS shared_preload_libraries;
SELECT * FROM crm_native.trigger_stats;
SELECT crm_native.trigger_stats_reset();
SELECT * FROM crm_native.trigger_stats_info();
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT count(*) AS native_triggers FROM crm_native.install() WHERE implementation = 'native';
RESET client_min_messages;
SHOW crm_native.trigger_stats;
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '00000000-0000-0000-0000-00000000000a', 'Name ' || (i % 3), 'user' || (i % 3) || '@example.com', 's' || i
  FROM generate_series(1, 6) i;
SELECT count(*) AS chats, count(customer_id) AS linked, count(DISTINCT customer_id) AS customers FROM "VC Usage";
-- the reset is not for everyone
SELECT has_function_privilege('public', 'crm_native.trigger_stats_reset()', 'EXECUTE') AS public_may_reset;

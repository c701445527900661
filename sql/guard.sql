-- The boundary guards (src/pg/guard.hpp): each kind of failure inside live
-- C++ code becomes an ordinary ERROR, the backend survives, and the same
-- session keeps working.
\set VERBOSITY default
-- The test-only entry point is not part of the extension: it exists only in a
-- library built with CRM_TEST_FUNCTIONS=1 (the test command's build).
CREATE FUNCTION crm_native._guard_test(kind text) RETURNS text
    AS 'crm_native', 'crm_guard_test'
    LANGUAGE C STRICT VOLATILE;
SELECT crm_native._guard_test('ok');

-- a C++ exception
SELECT crm_native._guard_test('cpp_exception');
SELECT 1 AS still_alive;

-- std::invalid_argument maps to invalid_parameter_value (22023)
SELECT crm_native._guard_test('invalid_argument');
\echo :LAST_ERROR_SQLSTATE

-- a real std::bad_alloc from a failed allocation (53200 out_of_memory)
SELECT crm_native._guard_test('bad_alloc');
\echo :LAST_ERROR_SQLSTATE
SELECT 2 AS still_alive;

-- a PostgreSQL error raised by a backend call inside C++ code keeps its
-- SQLSTATE (22P02) and message, and the C++ objects on the way were
-- destroyed: the count of destructors run during unwinding goes up by one.
SELECT crm_native._guard_test('destructor_count') AS unwound_before \gset
SELECT crm_native._guard_test('pg_error');
\echo :LAST_ERROR_SQLSTATE
SELECT crm_native._guard_test('destructor_count')::int - :unwound_before AS unwound_by_pg_error;

-- errors inside a transaction abort it cleanly; savepoints recover
BEGIN;
SAVEPOINT s;
SELECT crm_native._guard_test('cpp_exception');
ROLLBACK TO SAVEPOINT s;
SELECT crm_native._guard_test('ok');
COMMIT;

SELECT crm_native._guard_test('no_such_kind');
SELECT crm_native._guard_test(NULL) IS NULL AS strict_null;

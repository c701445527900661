-- Core objects of the crm_native schema.

-- Test-only: raises each kind of failure inside live C++ code to prove the
-- boundary guards (src/pg/guard.hpp). Not for applications; superuser only.
CREATE FUNCTION crm_native._guard_test(kind text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_guard_test'
    LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION crm_native._guard_test(text) FROM PUBLIC;

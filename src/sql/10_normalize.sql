-- Matching-key normalization (src/core/normalize.hpp, src/pg/normalize.cpp).
-- All return NULL for NULL and for input that normalizes to nothing.
--
-- Volatility: IMMUTABLE where the result depends on the arguments alone (for
-- a given build of ICU and libphonenumber: after upgrading either, rebuild
-- stored keys and any index on these functions, as for ICU collations);
-- STABLE where a GUC is read (crm_native.default_region,
-- crm_native.email_provider_rules).

CREATE FUNCTION crm_native.normalize_email(email text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_email'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_email(text) IS
    'Email matching key: trimmed, lower-cased; Gmail rules if crm_native.email_provider_rules is on';

CREATE FUNCTION crm_native.normalize_email(email text, provider_rules boolean) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_email_rules'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_email(text, boolean) IS
    'Email matching key: trimmed, lower-cased; Gmail rules (dots, +tags) if provider_rules';

CREATE FUNCTION crm_native.normalize_phone(phone text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_phone'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_phone(text) IS
    'Phone matching key: E.164 digits without +, national numbers read in crm_native.default_region';

CREATE FUNCTION crm_native.normalize_phone(phone text, region text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_phone_region'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_phone(text, text) IS
    'Phone matching key: E.164 digits without +, national numbers read in the given region';

CREATE FUNCTION crm_native.normalize_name(name text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_normalize_name'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.normalize_name(text) IS
    'Name matching key: Unicode NFKC case-fold, trimmed, inner whitespace collapsed';

CREATE FUNCTION crm_native.version_info() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'crm_normalization_version_info'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION crm_native.version_info() IS
    'Versions of crm_native, ICU and libphonenumber (build-time version) that matching keys depend on';

-- The library this backend runs must be the one this script was written
-- for. A server that preloads crm_native keeps the library it started with
-- after a newer package replaced the file; a connection keeps the one it
-- loaded first. Either would fail further down with "could not find
-- function" (or, worse, run old code under new SQL): say what to do instead.
DO $check$
DECLARE
    loaded text := crm_native.version_info()->>'crm_native';
    wanted text := (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'crm_native');
BEGIN
    IF loaded IS DISTINCT FROM wanted THEN
        RAISE EXCEPTION 'crm_native: this backend runs the crm_native % library, not %', loaded, wanted
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Restart PostgreSQL after installing a new crm_native package (required with '
                         'shared_preload_libraries = ''crm_native''), or at least open a new connection '
                         'for CREATE EXTENSION (docs/deployment.md, "Upgrading").';
    END IF;
END
$check$;

-- Loads the normalizers' library data now; returns the milliseconds it took
-- in this backend (about 0 once loaded). Safe for anyone to call.
CREATE FUNCTION crm_native._normalization_warm_up() RETURNS double precision
    AS 'MODULE_PATHNAME', 'crm_normalization_warm_up'
    LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

-- Core objects of the crm_native schema.

-- The native triggers install() creates, one row per trigger. Each feature's
-- SQL fragment registers its own triggers here; install() reads the table at
-- call time. One application trigger may be replaced by several native ones
-- (e.g. metrics: one statement-level trigger per event, plus TRUNCATE).
CREATE TABLE crm_native.native_trigger (
    trigger_name text PRIMARY KEY,   -- name of the native trigger it creates
    table_name   text NOT NULL,      -- 'VC Usage' or 'customers' (unqualified)
    replaces     text NOT NULL,      -- the application trigger it takes over from
    ddl          text NOT NULL,      -- format() template; %1$s = the quoted,
                                     -- schema-qualified table, e.g.
                                     -- 'CREATE TRIGGER x AFTER INSERT ON %1$s ...';
                                     -- %2$s = the function's arguments
    on_partitions boolean NOT NULL DEFAULT false
                                     -- also created on each partition of the
                                     -- table, with the argument 'partition'
                                     -- (statement triggers: PostgreSQL clones
                                     -- row triggers onto partitions, not these)
);

-- Raises 3F000 '<fn>: schema "<target_schema>" does not exist' (the check
-- every function taking a target_schema makes first).
CREATE FUNCTION crm_native._require_schema(fn text, target_schema text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF target_schema IS NULL OR NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION '%: schema "%" does not exist', fn, target_schema
            USING ERRCODE = 'invalid_schema_name';
    END IF;
END
$$;

-- The schema must be the CRM schema (_missing_columns(), in 50_install.sql:
-- the six tables as tables, with the columns and types the triggers read)
-- before a function reads it: a view or a column of another type in their
-- place would run the schema owner's code as the caller, a superuser
-- maybe (found by an independent review).
CREATE FUNCTION crm_native._require_crm_schema(fn text, target_schema text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text[];
BEGIN
    PERFORM crm_native._require_schema(fn, target_schema);
    missing := ARRAY(SELECT m.problem FROM crm_native._missing_columns(target_schema) m ORDER BY m.ordinal, m.problem);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION '%: schema "%" is not a CRM schema crm_native can read: %', fn, target_schema,
                        array_to_string(missing, '; ')
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

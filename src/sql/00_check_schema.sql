-- The extension's schema must belong to the role creating (or updating) the
-- extension, or to a superuser, and nobody else may create objects in it.
-- CREATE EXTENSION adopts an existing schema named crm_native whoever owns
-- it; its owner could then replace or overload the functions that the
-- SECURITY DEFINER event trigger calls, and run code as a superuser (found
-- by an independent tester); nor may it hold objects of such a role.
DO $check$
DECLARE
    owner_oid oid;
    creators text;
    foreign_objects text;
BEGIN
    SELECT n.nspowner INTO owner_oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'crm_native';
    IF owner_oid <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = owner_oid) THEN
        RAISE EXCEPTION 'crm_native: schema crm_native belongs to role %, which is not a superuser',
                        pg_catalog.quote_ident((SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = owner_oid))
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The extension''s functions live in that schema; its owner could replace them and run code as a superuser.',
                  HINT = 'Drop that schema, or ALTER SCHEMA crm_native OWNER TO a superuser, then create the extension.';
    END IF;
    SELECT pg_catalog.string_agg(CASE a.grantee WHEN 0::pg_catalog.oid THEN 'PUBLIC'
                                 ELSE pg_catalog.quote_ident((SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = a.grantee)) END, ', ')
      INTO creators
      FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
     WHERE n.nspname = 'crm_native' AND a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner
       AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = a.grantee), false);
    IF creators IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native: roles other than its owner may create objects in schema crm_native: %', creators
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'They could overload the extension''s functions and run code as whoever calls them.',
                  HINT = 'REVOKE CREATE ON SCHEMA crm_native FROM those roles, then create (or update) the extension.';
    END IF;
    -- what such a role may already have put there (a schema given to a
    -- superuser keeps its objects): an overload with the exact argument
    -- types would win over the extension's function
    SELECT pg_catalog.string_agg(o.what, ', ' ORDER BY o.what) INTO foreign_objects
      FROM (SELECT pg_catalog.format('function %s', p.oid::pg_catalog.regprocedure) AS what, p.proowner AS owner,
                   'pg_catalog.pg_proc'::pg_catalog.regclass::oid AS classid, p.oid AS objid
              FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'crm_native'::pg_catalog.regnamespace::oid
            UNION ALL
            SELECT pg_catalog.format('operator %s', o.oid::pg_catalog.regoperator), o.oprowner,
                   'pg_catalog.pg_operator'::pg_catalog.regclass::oid, o.oid
              FROM pg_catalog.pg_operator o WHERE o.oprnamespace = 'crm_native'::pg_catalog.regnamespace::oid
            UNION ALL
            SELECT pg_catalog.format('relation %s', c.oid::pg_catalog.regclass), c.relowner,
                   'pg_catalog.pg_class'::pg_catalog.regclass::oid, c.oid
              FROM pg_catalog.pg_class c WHERE c.relnamespace = 'crm_native'::pg_catalog.regnamespace::oid
            UNION ALL
            SELECT pg_catalog.format('type %s', t.oid::pg_catalog.regtype), t.typowner,
                   'pg_catalog.pg_type'::pg_catalog.regclass::oid, t.oid
              FROM pg_catalog.pg_type t WHERE t.typnamespace = 'crm_native'::pg_catalog.regnamespace::oid) o
     WHERE NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = o.owner), false);
    IF foreign_objects IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native: schema crm_native holds objects of roles that are not superusers: %', foreign_objects
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'They could stand in for the extension''s functions and run code as whoever calls them.',
                  HINT = 'Drop them (or the schema), then create (or update) the extension. If they are the '
                         'extension''s own objects (its owner is no longer a superuser), do not drop them: a '
                         'superuser runs REASSIGN OWNED BY that owner TO a superuser, then updates the extension.';
    END IF;
END
$check$;

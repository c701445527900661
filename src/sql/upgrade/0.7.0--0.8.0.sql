-- crm_native 0.7.0 -> 0.8.0 (CHANGELOG.md). The Makefile appends the SQL
-- fragments that are new in 0.8.0 and the functions 0.8.0 changed to this
-- file to make crm_native--0.7.0--0.8.0.sql; test/run.d/upgrade.sh proves
-- that an updated 0.7.0 has exactly the objects of a fresh 0.8.0.
\echo Use "ALTER EXTENSION crm_native UPDATE TO '0.8.0'" to load this file. \quit

-- The library this backend runs must be 0.8.0's: a server that preloads
-- crm_native keeps the library it started with after a newer package
-- replaced the file, and the functions below would fail with "could not
-- find function".
DO $check$
DECLARE
    loaded text := crm_native.version_info()->>'crm_native';
BEGIN
    IF loaded IS DISTINCT FROM '0.8.0' THEN
        RAISE EXCEPTION 'crm_native: this backend runs the crm_native % library, not 0.8.0', loaded
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Restart PostgreSQL after installing the new crm_native package (required with '
                         'shared_preload_libraries = ''crm_native''), then run ALTER EXTENSION crm_native UPDATE '
                         'in a new connection (docs/deployment.md, "Upgrading").';
    END IF;
END
$check$;

-- The lock tags of the customer sync change when this update commits
-- (25_lock_secret.sql): a transaction that took 0.7.0's unkeyed key locks
-- must have ended before any chat computes keyed ones, or both could create
-- the same customer (found by an independent review). Each such transaction
-- wrote a chat table that has the native sync trigger, and holds ROW
-- EXCLUSIVE on it until it ends: SHARE ROW EXCLUSIVE on all of them, held
-- until the update commits, waits for those and holds off new chat writes.
-- (Only the tables the trigger was put on itself: locking a partitioned
-- table locks its partitions.) Taken in short tries, all tables at once or
-- none: a lock wait of 200 ms at most (less than deadlock_timeout, so a
-- chat transaction writing two chat tables never becomes a deadlock victim:
-- the update gives up first), then 200 ms in which chats flow, for up to
-- ten minutes (found by an independent review: waiting without limit, the
-- update deadlocked with such a transaction, and every chat queued behind
-- it while it waited for an idle one).
DO $quiesce$
DECLARE
    chats text;
    deadline timestamptz := pg_catalog.clock_timestamp() + interval '10 minutes';
    caller_lock_timeout text := pg_catalog.current_setting('lock_timeout');
BEGIN
    SELECT pg_catalog.string_agg(DISTINCT t.tgrelid::pg_catalog.regclass::pg_catalog.text, ', ')
      INTO chats
      FROM pg_catalog.pg_trigger t
     WHERE t.tgfoid = 'crm_native.customer_sync()'::pg_catalog.regprocedure AND t.tgparentid = 0;
    IF chats IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_catalog.set_config('lock_timeout', '200ms', true);
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', chats);
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            IF pg_catalog.clock_timestamp() > deadline THEN
                RAISE EXCEPTION 'crm_native: the update could not lock the chat tables (%) in ten minutes', chats
                    USING ERRCODE = 'lock_not_available',
                          DETAIL = 'The lock tags change with this update; it must wait until no transaction that '
                                   'wrote chats before it is still open.',
                          HINT = 'Look for idle transactions, prepared transactions or a long VACUUM on those '
                                 'tables (pg_locks, pg_stat_activity, pg_prepared_xacts), then update again.';
            END IF;
            PERFORM pg_catalog.pg_sleep(0.2);
        END;
    END LOOP;
    PERFORM pg_catalog.set_config('lock_timeout', caller_lock_timeout, true);
END
$quiesce$;

-- Records are replayed by uninstall() only once verified. Those written
-- before 0.8.0 are not: 0.7.0's docs had table owners granted write access
-- to the registry, and whether anyone used it (even a grant since revoked)
-- cannot be told now. A superuser compares them with the application's
-- migrations and marks them (uninstall() says how; README, "Upgrading").
ALTER TABLE crm_native.replaced_trigger ADD COLUMN verified boolean NOT NULL DEFAULT false;

-- The schemas install() put the native triggers on (uninstall() refuses a
-- schema with native triggers that no registry names): every schema whose
-- CRM tables carry a registered native trigger, or that has records.
CREATE TABLE crm_native.installed_schema (
    schema_name  text PRIMARY KEY,
    installed_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('crm_native.installed_schema', '');
-- Filled at the end (0.7.0--0.8.0.post.sql), with the function that
-- answers which schemas carry native triggers.

-- The registries are written only by the extension's owner (through
-- install() and uninstall()): uninstall() replays the recorded definitions.
-- The write access that docs/install.md had table owners granted on
-- replaced_trigger up to 0.7.0 is taken back, column grants and grants
-- passed on included; reading stays open to all. Records written through
-- such a grant are not trusted either: uninstall() restores only one CREATE
-- TRIGGER of the recorded trigger, as the table's owner, calling only
-- functions of the owner or a superuser, and only where a native trigger
-- stands in for it.
DO $revoke$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT pg_catalog.quote_ident(g.rolname) AS grantee
          FROM pg_catalog.pg_class c
          CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
          JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
         WHERE c.oid = 'crm_native.replaced_trigger'::pg_catalog.regclass::oid AND a.grantee <> c.relowner
        UNION
        SELECT DISTINCT pg_catalog.quote_ident(g.rolname)
          FROM pg_catalog.pg_attribute att
          CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a
          JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
         WHERE att.attrelid = 'crm_native.replaced_trigger'::pg_catalog.regclass::oid
    LOOP
        EXECUTE 'REVOKE ALL ON crm_native.replaced_trigger FROM ' || r.grantee || ' CASCADE';
    END LOOP;
    REVOKE ALL ON crm_native.replaced_trigger FROM PUBLIC CASCADE;
END
$revoke$;
GRANT SELECT ON crm_native.replaced_trigger, crm_native.installed_schema TO PUBLIC;

-- uninstall() restores a recorded trigger only if its definition is one
-- CREATE TRIGGER of that trigger on that table, as the table's owner.
CREATE FUNCTION crm_native._restore_trigger(rel regclass, trg text, definition text)
RETURNS void
AS 'MODULE_PATHNAME', 'crm_restore_trigger'
LANGUAGE C STRICT VOLATILE;

-- health() counts the unlinked chats the sync would link (60_maintenance.sql).
CREATE FUNCTION crm_native._sync_links_contact(email text, phone text, name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'crm_sync_links_contact' LANGUAGE C STABLE PARALLEL SAFE;

-- The trigger statistics are read through the view trigger_stats, which
-- shows every database's: its function is no longer callable by every role.
REVOKE ALL ON FUNCTION crm_native._trigger_stats() FROM PUBLIC;


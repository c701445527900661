-- The key of the customer sync's lock tags (customer_sync.cpp, "Lock tags";
-- docs/tenancy.md): 32 random bytes per database. pg_locks is readable by
-- every role; keyed tags show nothing a tenant could compute from another
-- company's id and a guessed email.
--
-- In a table, not a file: WAL carries it to standbys and into backups, so a
-- promoted standby or a restored copy computes the same tags as the
-- primary did, and the key locks its recovered prepared transactions hold
-- still exclude the same customer's creation (in a file beside the data, a
-- standby made before the first new customer had none and made a new one:
-- two customers; found by an independent tester). pg_dump leaves it out:
-- a restored database gets its own when it creates the extension.
--
-- Readable by the extension's owner only; the triggers read it below the
-- permission checks (load_lock_secret()). Never change the row: backends
-- that read the old and the new key would not exclude each other.
CREATE TABLE crm_native.lock_secret (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    secret bytea NOT NULL CHECK (pg_catalog.length(secret) = 32)
) USING heap;  -- whatever default_table_access_method says: the library scans it as a heap
-- Only the owner: also no grant that the installing role's ALTER DEFAULT
-- PRIVILEGES added (a "read-only role" set-up gave every table to one;
-- found by an independent review). health() reports any grant made later.
DO $revoke$
DECLARE
    grantee pg_catalog.oid;
BEGIN
    FOR grantee IN SELECT DISTINCT a.grantee
                     FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
                    WHERE c.oid = 'crm_native.lock_secret'::pg_catalog.regclass AND a.grantee <> c.relowner LOOP
        IF grantee = 0 THEN
            REVOKE ALL ON crm_native.lock_secret FROM PUBLIC;
        ELSE
            EXECUTE pg_catalog.format('REVOKE ALL ON crm_native.lock_secret FROM %I', pg_catalog.pg_get_userbyid(grantee));
        END IF;
    END LOOP;
END
$revoke$;
REVOKE ALL ON crm_native.lock_secret FROM PUBLIC;
-- Two version-4 UUIDs: 244 bits from pg_strong_random().
INSERT INTO crm_native.lock_secret (secret)
SELECT pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text
                                            OPERATOR(pg_catalog.||) pg_catalog.gen_random_uuid()::pg_catalog.text,
                                            '-', ''), 'hex');

-- The customer sync's key locks and key reads, counted without a clock.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');

-- 1. Key locks that a rolled-back subtransaction took (and released) do not
--    count toward crm_native.sync_key_lock_limit: an import that catches
--    each failed row's error took its company's bulk lock while it held no
--    key lock, and made the company's other new customers wait for it
--    (found by an independent tester).
SET crm_native.sync_key_lock_limit = 2;
BEGIN;
DO $$
BEGIN
  FOR i IN 1..3 LOOP
    BEGIN
      INSERT INTO "VC Usage" (company_id, customer_email, session_id)
        VALUES ('00000000-0000-0000-0000-00000000000a', 'row' || i || '@x.example', 'r' || i);
      RAISE EXCEPTION 'row % rejected', i;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  END LOOP;
END $$;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'ok@x.example', 'ok');
-- one key lock (17234), no bulk lock (17235)
SELECT objsubid, mode FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1;
-- a released savepoint's locks stay counted: two more new customers reach
-- the limit, and the next one takes the bulk lock
SAVEPOINT s;
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'kept@x.example', 'k1');
RELEASE SAVEPOINT s;
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'bulk@x.example', 'k2');
SELECT objsubid, mode, count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() GROUP BY 1, 2 ORDER BY 1;
COMMIT;
RESET crm_native.sync_key_lock_limit;

-- 2. A chat whose phone 50 customers share reads each of their keys once
--    (the full lookup, for the oldest), not twice: the probe before it
--    stops at the second holder. (It read every holder: a phone 3,000
--    customers share cost 6,000 key reads per chat.)
INSERT INTO customers (company_id, customer_name, customer_email, customer_phone)
SELECT '00000000-0000-0000-0000-00000000000a', 'Shared ' || i, 'shared' || i || '@x.example', '+1 800 555 0000'
  FROM generate_series(1, 50) i;
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id)
  VALUES ('00000000-0000-0000-0000-00000000000a', 'someone.new@x.example', '+1 800 555 0000', 'p1');
SELECT relname, seq_tup_read + coalesce(idx_tup_fetch, 0) BETWEEN 50 AND 60 AS about_one_read_per_holder
  FROM pg_stat_xact_user_tables WHERE relname = 'customer_matching_keys';
COMMIT;
-- linked to the oldest holder (created_at, then id: the 50 share one now())
SELECT v.customer_id = (SELECT c.id FROM customers c WHERE c.customer_phone = '+1 800 555 0000'
                         ORDER BY c.created_at, c.id LIMIT 1) AS oldest_holder
  FROM "VC Usage" v WHERE v.session_id = 'p1';

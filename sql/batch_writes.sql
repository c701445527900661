-- Batched writes of new customers' matching keys and audit rows
-- (crm_native.sync_batch_writes, src/pg/pending_writes.hpp): one statement's
-- new customers get their keys and audit rows in one INSERT per table, and
-- the result is the same as the row-by-row triggers'.
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A');

-- What a statement left behind, independent of generated ids: per customer
-- (by name) its keys, audit rows and events, the order in which audit rows,
-- keys and events were written, and each chat's customer.
CREATE FUNCTION state() RETURNS TABLE (what text, detail text) LANGUAGE sql AS $$
  SELECT 'customer', format('%s|%s|%s', customer_name, customer_email, customer_phone)
    FROM customers
  UNION ALL
  SELECT 'key', format('%s|%s|%s|%s', c.customer_name, k.key_type, k.key_value, k.normalized_value)
    FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
  UNION ALL
  SELECT 'audit', format('%s|%s|%s|%s', c.customer_name, a.operation, a.changed_fields,
                         a.new_data ->> 'customer_email')
    FROM customer_audit_log a JOIN customers c ON c.id = a.record_id
  UNION ALL
  SELECT 'event', format('%s|%s|%s', c.customer_name, e.event_type, e.event_data)
    FROM customer_events e JOIN customers c ON c.id = e.customer_id
  UNION ALL  -- the order of the audit rows and keys (by id), as written
  SELECT 'audit order', format('%s|%s|%s', row_number() OVER (ORDER BY a.id), c.customer_name, a.operation)
    FROM customer_audit_log a JOIN customers c ON c.id = a.record_id
  UNION ALL
  SELECT 'key order', format('%s|%s|%s', row_number() OVER (ORDER BY k.id), c.customer_name, k.key_type)
    FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
  UNION ALL
  SELECT 'event order', format('%s|%s|%s', row_number() OVER (ORDER BY e.id), c.customer_name, e.event_type)
    FROM customer_events e JOIN customers c ON c.id = e.customer_id
  UNION ALL
  SELECT 'chat', format('%s|%s', v.session_id, c.customer_name)
    FROM "VC Usage" v LEFT JOIN customers c ON c.id = v.customer_id
  ORDER BY 1, 2
$$;

-- One chat statement: new customers, a chat that matches an earlier chat's
-- new customer by email (fills its phone), one that matches by phone, and a
-- name-only chat that matches a new customer by name.
CREATE FUNCTION import_chats() RETURNS void LANGUAGE sql AS $$
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
  SELECT '11111111-1111-1111-1111-111111111111', v.name, v.email, v.phone, v.session
    FROM (VALUES (1, 'Ann Lee', 'ann@example.com', NULL, 's1'),
                 (2, 'Bob Roe', 'bob@example.com', '+1 555 000 0002', 's2'),
                 (3, 'Cy Poe', 'cy@example.com', '+1 555 000 0003', 's3'),
                 (4, 'Ann L.', 'ANN@example.com', '+1 555 000 0001', 's4'),
                 (5, 'Robert', 'robert@example.com', '(555) 000-0002', 's5'),
                 (6, 'Cy  POE', NULL, NULL, 's6'),
                 (7, 'Dee Moe', 'dee@example.com', '+1 555 000 0007', 's7')) AS v (n, name, email, phone, session)
   ORDER BY v.n
$$;

-- The same statement with batching off and on gives the same state. Each run
-- is rolled back by its exception block; the captured state survives in a
-- variable.
CREATE FUNCTION capture(batch boolean) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  captured text[];
BEGIN
  PERFORM set_config('crm_native.sync_batch_writes', batch::text, true);
  BEGIN
    PERFORM import_chats();
    captured := ARRAY(SELECT what || ' ' || detail FROM state());
    RAISE EXCEPTION 'roll back';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
  RETURN QUERY SELECT unnest(captured);
END $$;
CREATE TEMP TABLE state_on AS SELECT capture(true) AS line;
CREATE TEMP TABLE state_off AS SELECT capture(false) AS line;
SELECT count(*) AS rows_compared FROM state_on;
(SELECT 'only with batching' AS side, line FROM state_on EXCEPT ALL SELECT 'only with batching', line FROM state_off)
UNION ALL
(SELECT 'only without', line FROM state_off EXCEPT ALL SELECT 'only without', line FROM state_on);
SELECT line FROM state_on ORDER BY line;
SELECT count(*) AS nothing_left_behind FROM customers;

-- Batching is really on: the keys (and events) of a run of new customers
-- are written by one command (one cmin), without it by one command each.
CREATE FUNCTION key_commands() RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(DISTINCT cmin::text) FROM customer_matching_keys WHERE key_type = 'email' $$;
CREATE FUNCTION event_commands() RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(DISTINCT cmin::text) FROM customer_events WHERE event_type = 'created' $$;
BEGIN;
SET LOCAL crm_native.sync_batch_writes = on;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Bulk ' || i, 'bulk' || i || '@example.com', 'b' || i
  FROM generate_series(1, 50) i;
SELECT count(*) AS email_keys, key_commands() AS commands, event_commands() AS event_commands,
       (SELECT count(*) FROM customer_audit_log WHERE operation = 'INSERT') AS insert_audits
  FROM customer_matching_keys WHERE key_type = 'email';
ROLLBACK;
BEGIN;
SET LOCAL crm_native.sync_batch_writes = off;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Bulk ' || i, 'bulk' || i || '@example.com', 'b' || i
  FROM generate_series(1, 50) i;
SELECT count(*) AS email_keys, key_commands() AS commands, event_commands() AS event_commands
  FROM customer_matching_keys WHERE key_type = 'email';
ROLLBACK;

-- A single-row statement (the common single chat) is planned for one row and
-- has nothing to batch: it runs the row-by-row path, where the 'created'
-- event is written by the customer's own INSERT (same cmin), not afterwards.
CREATE FUNCTION event_with_customer(name text) RETURNS boolean LANGUAGE sql AS $$
  SELECT e.cmin::text = c.cmin::text FROM customers c JOIN customer_events e ON e.customer_id = c.id
   WHERE c.customer_name = name AND e.event_type = 'created' $$;
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Single', 'single@example.com', 'one');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Pair 1', 'pair1@example.com', 'p1'),
       ('11111111-1111-1111-1111-111111111111', 'Pair 2', 'pair2@example.com', 'p2');
SELECT event_with_customer('Single') AS single_row_by_row, event_with_customer('Pair 1') AS pair_row_by_row;
ROLLBACK;

-- A huge import does not buffer without bound: past 50,000 buffered rows
-- (10,000 new customers: event, audit row, 3 keys each) the batch is written
-- before the next customer, so 10,500 customers take two key-writing commands.
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Huge ' || i, 'huge' || i || '@example.com',
       '+1 555 3' || lpad(i::text, 6, '0'), 'h' || i
  FROM generate_series(1, 10500) i;
SELECT count(*) AS email_keys, key_commands() AS commands, event_commands() AS event_commands,
       (SELECT count(*) FROM customer_matching_keys) AS all_keys,
       (SELECT count(*) FROM customer_audit_log WHERE operation = 'INSERT') AS insert_audits
  FROM customer_matching_keys WHERE key_type = 'email';
ROLLBACK;

-- AFTER ROW triggers of the chat statement, and later statements of a
-- function, see every key: the batch is written when the executor run ends.
CREATE FUNCTION count_keys_after_chat() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE WARNING 'chat %: customer has % keys', NEW.session_id,
    (SELECT count(*) FROM customer_matching_keys WHERE customer_id = NEW.customer_id);
  RETURN NULL;
END $$;
CREATE TRIGGER zz_count_keys AFTER INSERT ON "VC Usage" FOR EACH ROW EXECUTE FUNCTION count_keys_after_chat();
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'After ' || i, 'after' || i || '@example.com', '+1 555 100 000' || i, 'a' || i
  FROM generate_series(1, 3) i;
ROLLBACK;
DROP TRIGGER zz_count_keys ON "VC Usage";

CREATE FUNCTION chat_then_count(n int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
  SELECT '11111111-1111-1111-1111-111111111111', 'Fn ' || i, 'fn' || i || '@example.com', 'f' || i
    FROM generate_series(1, n) i;
  RETURN (SELECT count(*) FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
           WHERE c.customer_name LIKE 'Fn %');
END $$;
BEGIN;
SELECT chat_then_count(4) AS keys_seen_by_the_next_statement;
ROLLBACK;

-- A subtransaction that writes the batch (a customer UPDATE inside an
-- exception block) and then fails: its rows roll back, the customers created
-- before it stay, and their keys and audit rows are written again.
CREATE FUNCTION touch_then_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    UPDATE customers SET customer_notes = 'touched' WHERE id = NEW.customer_id;
    RAISE EXCEPTION 'fail on purpose';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
  RETURN NEW;
END $$;
-- fires after the sync (trigger name order), on the third chat only
CREATE TRIGGER zz_touch_then_fail BEFORE INSERT ON "VC Usage" FOR EACH ROW
  WHEN (NEW.session_id = 'x3') EXECUTE FUNCTION touch_then_fail();
BEGIN;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Sub ' || i, 'sub' || i || '@example.com', '+1 555 200 000' || i, 'x' || i
  FROM generate_series(1, 5) i;
SELECT c.customer_name,
       (SELECT string_agg(k.key_type || '=' || k.normalized_value, ' ' ORDER BY k.id)
          FROM customer_matching_keys k WHERE k.customer_id = c.id) AS keys,
       (SELECT string_agg(a.new_data ->> 'customer_email', ',') FROM customer_audit_log a
         WHERE a.record_id = c.id AND a.operation = 'INSERT') AS insert_audits,
       (SELECT count(*) FROM customer_audit_log a WHERE a.record_id = c.id AND a.operation = 'UPDATE') AS update_audits,
       (SELECT string_agg(e.event_data ->> 'session_id', ',') FROM customer_events e
         WHERE e.customer_id = c.id AND e.event_type = 'created') AS created_events,
       c.customer_notes
  FROM customers c WHERE c.customer_name LIKE 'Sub %' ORDER BY 1;
COMMIT;
DROP TRIGGER zz_touch_then_fail ON "VC Usage";

-- A statement that fails part-way leaves nothing behind, and the next
-- transaction commits normally (no rows left over in the batch).
CREATE FUNCTION fail_on_x(s text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF s = 'boom' THEN RAISE EXCEPTION 'chat % rejected', s; END IF;
  RETURN s;
END $$;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Err ' || i, 'err' || i || '@example.com',
       fail_on_x(CASE WHEN i = 3 THEN 'boom' ELSE 'e' || i END)
  FROM generate_series(1, 4) i;
SELECT count(*) AS customers_left FROM customers WHERE customer_name LIKE 'Err %';
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
VALUES ('11111111-1111-1111-1111-111111111111', 'Next', 'next@example.com', 'n1');
SELECT count(*) AS next_keys FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
 WHERE c.customer_name = 'Next';

-- COPY: not batched (no executor run), same rows.
COPY "VC Usage" (company_id, customer_name, customer_email, session_id) FROM STDIN;
11111111-1111-1111-1111-111111111111	Copy One	copy1@example.com	c1
11111111-1111-1111-1111-111111111111	Copy Two	copy2@example.com	c2
11111111-1111-1111-1111-111111111111	Copy One Again	COPY1@example.com	c3
\.
SELECT * FROM state() WHERE detail LIKE 'Copy%' OR detail LIKE 'c_|%';

-- A new connection whose first statement loads the library (no preload):
-- the hooks did not see that statement start, so it runs row by row, and
-- commits normally; the next statement batches.
\c
SET client_min_messages = warning;
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'First ' || i, 'first' || i || '@example.com', 'fc' || i
  FROM generate_series(1, 5) i;
SELECT count(*) AS first_keys, count(DISTINCT k.cmin::text) AS first_commands
  FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
 WHERE c.customer_name LIKE 'First %' AND k.key_type = 'email';
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Second ' || i, 'second' || i || '@example.com', 'sc' || i
  FROM generate_series(1, 5) i;
SELECT count(*) AS second_keys, count(DISTINCT k.cmin::text) AS second_commands
  FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
 WHERE c.customer_name LIKE 'Second %' AND k.key_type = 'email';

-- Uninstalled: the plpgsql triggers again, nothing batched.
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall();
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Plain ' || i, 'plain' || i || '@example.com', 'p' || i
  FROM generate_series(1, 3) i;
SELECT count(*) AS plain_keys FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
 WHERE c.customer_name LIKE 'Plain %';

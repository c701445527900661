-- crm_native.customer_sync(): a database error inside one of its nested
-- writes (a CHECK or a trigger the application added on customers or
-- customer_events) aborts the statement with the original error and leaves
-- no half-written data; the backend and the trigger keep working after it.
BEGIN;
SELECT plan(13);
SET LOCAL client_min_messages = warning;

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() puts the native triggers in place');
INSERT INTO companies (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'A');

-- Row counts of every table the sync writes, to prove a failed statement
-- left nothing behind.
CREATE TEMP TABLE counts_before (chats bigint, customers bigint, events bigint, keys bigint, audit bigint);
CREATE FUNCTION pg_temp.counts() RETURNS SETOF counts_before LANGUAGE sql AS $$
SELECT (SELECT count(*) FROM "VC Usage"), (SELECT count(*) FROM customers), (SELECT count(*) FROM customer_events),
       (SELECT count(*) FROM customer_matching_keys), (SELECT count(*) FROM customer_audit_log) $$;
CREATE FUNCTION pg_temp.remember() RETURNS void LANGUAGE sql AS $$
TRUNCATE counts_before; INSERT INTO counts_before SELECT * FROM pg_temp.counts() $$;
CREATE FUNCTION pg_temp.unchanged() RETURNS boolean LANGUAGE sql AS $$
SELECT (SELECT row(c.*)::text FROM pg_temp.counts() c) = (SELECT row(b.*)::text FROM counts_before b) $$;
SELECT pg_temp.remember();

-- A CHECK constraint on customers fails inside the customer insert.
ALTER TABLE customers ADD CONSTRAINT no_spam CHECK (customer_email NOT LIKE '%@spam.example');
SELECT throws_ok(
    $$INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id) VALUES
        ('00000000-0000-0000-0000-00000000000a', 'Ok', 'ok@example.com', 's'),
        ('00000000-0000-0000-0000-00000000000a', 'Spam', 'x@spam.example', 's')$$,
    '23514', 'new row for relation "customers" violates check constraint "no_spam"',
    'a CHECK violation in the nested customer insert surfaces with its own SQLSTATE and message');
SELECT ok(pg_temp.unchanged(), 'the failed statement left no chat, customer, event, key or audit row');

-- A CHECK fails inside the fill UPDATE of a matched customer.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@example.com', 's');  -- no phone yet
ALTER TABLE customers ADD CONSTRAINT phone_format CHECK (customer_phone IS NULL OR customer_phone ~ '^\+');
SELECT pg_temp.remember();
SELECT throws_ok(
    $$INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
      VALUES ('00000000-0000-0000-0000-00000000000a', 'Ann', 'ann@example.com', '555-000-9999', 's')$$,
    '23514', 'new row for relation "customers" violates check constraint "phone_format"',
    'a CHECK violation in the nested fill UPDATE surfaces');
SELECT ok(pg_temp.unchanged(), 'the failed fill left nothing behind (no chat, no event, no update)');
ALTER TABLE customers DROP CONSTRAINT phone_format;

-- An application trigger on customers raises.
CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_name = 'Refused' THEN
        RAISE EXCEPTION 'application refuses customer %', NEW.customer_name USING ERRCODE = 'P0001', DETAIL = 'by policy';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER app_refuse BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
SELECT throws_ok(
    $$INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
      VALUES ('00000000-0000-0000-0000-00000000000a', 'Refused', 'refused@example.com', 's')$$,
    'P0001', 'application refuses customer Refused', 'an application trigger''s error surfaces unchanged');
SELECT ok(pg_temp.unchanged(), 'and leaves nothing behind');

-- An error in the nested event insert (after the customer insert succeeded).
CREATE FUNCTION pg_temp.no_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'events are frozen'; END $$;
CREATE TRIGGER app_no_events BEFORE INSERT ON customer_events FOR EACH ROW EXECUTE FUNCTION pg_temp.no_events();
SELECT throws_ok(
    $$INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
      VALUES ('00000000-0000-0000-0000-00000000000a', 'Eve', 'eve@example.com', 's')$$,
    'P0001', 'events are frozen', 'an error in the nested event insert surfaces');
SELECT ok(pg_temp.unchanged(), 'the customer inserted before the failing event is rolled back too');
DROP TRIGGER app_no_events ON customer_events;

-- Caught in a subtransaction by the application: the trigger keeps working.
DO $$
BEGIN
    INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
        VALUES ('00000000-0000-0000-0000-00000000000a', 'Refused', 'refused@example.com', 's');
EXCEPTION WHEN raise_exception THEN
    NULL;
END $$;
SELECT ok(pg_temp.unchanged(), 'an error caught in a subtransaction leaves nothing behind');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', 'Fine', 'fine@example.com', 's');
SELECT isnt((SELECT customer_id FROM "VC Usage" WHERE customer_email = 'fine@example.com'), NULL,
            'the next chat syncs normally');
SELECT is((SELECT count(*)::int FROM customer_events e JOIN customers c ON c.id = e.customer_id
            WHERE c.customer_email = 'fine@example.com'), 1, 'with its created event');

-- Pathological input is no error: a huge phone is no key (bounded before
-- parsing), the chat is still synced by its email.
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
    VALUES ('00000000-0000-0000-0000-00000000000a', 'Big', 'big@example.com', repeat('1', 2000), 's');
SELECT isnt((SELECT customer_id FROM "VC Usage" WHERE customer_email = 'big@example.com'), NULL,
            'a 2000-digit phone number does not stop the chat from being inserted and synced');

SELECT * FROM finish();
ROLLBACK;

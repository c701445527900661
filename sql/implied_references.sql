-- Implied foreign-key checks (crm_native.skip_implied_fk_checks,
-- src/pg/implied_references.hpp): the matching keys and 'created' event of a
-- customer this transaction wrote skip their two foreign-key checks (to
-- customers and to companies), with the same rows and the same errors as
-- with every check. The company checks are counted: PostgreSQL checks a
-- foreign key by reading the referenced row, and only those checks read
-- companies (pg_stat_xact_user_tables counts them; each block reports the
-- difference over its transaction).
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A'),
                                        ('22222222-2222-2222-2222-222222222222', 'B');
CREATE FUNCTION company_checks() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
   WHERE relid = 'companies'::regclass
$$;
CREATE FUNCTION new_chat(company uuid, n text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id)
  VALUES (company, 'Customer ' || n, 'c' || n || '@example.com', '+1 555 010 ' || lpad(n, 4, '0'), 's-' || n)
$$;

-- One chat from a new customer. Company checks with skipping: the chat's
-- and the customer's: 2. Without: also its 3 keys' and its event's: 6.
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '1');
SELECT company_checks() - :c0 AS checks_skipping;
SELECT count(*) AS keys FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
 WHERE c.customer_name = 'Customer 1';
SELECT event_type, event_data ->> 'session_id' AS session FROM customer_events;
ROLLBACK;
-- Which INSERTs skip which checks (the keys', the event's, the metrics
-- row's: the customer check only, it has no foreign key to companies).
BEGIN;
SET LOCAL client_min_messages = debug2;
SELECT new_chat('11111111-1111-1111-1111-111111111111', '0');
ROLLBACK;
SET crm_native.skip_implied_fk_checks = off;
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '1');
SELECT company_checks() - :c0 AS checks_all;
ROLLBACK;
RESET crm_native.skip_implied_fk_checks;

-- A statement of many chats (its keys and events are written in one INSERT
-- each, src/pg/pending_writes.hpp): 2 company checks per chat, not 6.
BEGIN;
SELECT company_checks() AS c0 \gset
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
SELECT '11111111-1111-1111-1111-111111111111', 'Bulk ' || i, 'bulk' || i || '@example.com', 's'
  FROM generate_series(1, 50) i;
SELECT company_checks() - :c0 AS checks_bulk_50;
SELECT count(*) AS keys FROM customer_matching_keys;
SELECT count(*) AS events FROM customer_events WHERE event_type = 'created';
ROLLBACK;

-- A customer renamed by the application: its new name key skips both checks
-- (company checks: 0, not 1).
SELECT new_chat('11111111-1111-1111-1111-111111111111', '2');
BEGIN;
SELECT company_checks() AS c0 \gset
UPDATE customers SET customer_name = 'Customer Two' WHERE customer_name = 'Customer 2';
SELECT company_checks() - :c0 AS checks_rename;
SELECT key_value FROM customer_matching_keys WHERE key_type = 'name';
ROLLBACK;

-- A customer deleted before its keys are written (a user trigger that fires
-- before the keys trigger): the keys fail their foreign key, as they do with
-- every check (and as the plpgsql trigger's did), and nothing is left.
CREATE FUNCTION delete_new_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM customers WHERE id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER trg_a_delete_new_customer AFTER INSERT ON customers
  FOR EACH ROW WHEN (NEW.customer_name = 'Doomed') EXECUTE FUNCTION delete_new_customer();
\set VERBOSITY terse
INSERT INTO customers (company_id, customer_name) VALUES ('11111111-1111-1111-1111-111111111111', 'Doomed');
SET crm_native.skip_implied_fk_checks = off;
INSERT INTO customers (company_id, customer_name) VALUES ('11111111-1111-1111-1111-111111111111', 'Doomed');
RESET crm_native.skip_implied_fk_checks;
\set VERBOSITY default
SELECT count(*) AS doomed_left FROM customers WHERE customer_name = 'Doomed';
DROP TRIGGER trg_a_delete_new_customer ON customers;

-- A user trigger on customer_matching_keys could change a row after the
-- guard saw it: then every check of the keys runs (company checks: 5).
CREATE FUNCTION keys_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER keys_touch BEFORE INSERT ON customer_matching_keys FOR EACH ROW EXECUTE FUNCTION keys_touch();
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '3');
SELECT company_checks() - :c0 AS checks_with_user_trigger_on_keys;
ROLLBACK;
DROP TRIGGER keys_touch ON customer_matching_keys;
-- Nor with a rule on it (company checks: 5).
CREATE TABLE key_log (customer_id uuid);
CREATE RULE keys_logged AS ON INSERT TO customer_matching_keys DO ALSO
  INSERT INTO key_log VALUES (NEW.customer_id);
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '8');
SELECT company_checks() - :c0 AS checks_with_rule_on_keys;
SELECT count(*) AS logged_keys FROM key_log;
ROLLBACK;
DROP RULE keys_logged ON customer_matching_keys;

-- The company check is implied only while the customer's own foreign key
-- keeps the company: with ON DELETE SET NULL it does not (the customer would
-- stay, its keys would point at a deleted company), so that check runs
-- (company checks: 6, and 2 again once the foreign key is validated).
ALTER TABLE customers DROP CONSTRAINT customers_company_id_fkey;
ALTER TABLE customers ALTER COLUMN company_id DROP NOT NULL;
ALTER TABLE customers ADD CONSTRAINT customers_company_id_fkey
  FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE SET NULL;
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '4');
SELECT company_checks() - :c0 AS checks_company_set_null;
ROLLBACK;
-- Nor when the customer's foreign key is NOT VALID.
ALTER TABLE customers DROP CONSTRAINT customers_company_id_fkey;
ALTER TABLE customers ADD CONSTRAINT customers_company_id_fkey
  FOREIGN KEY (company_id) REFERENCES companies (id) NOT VALID;
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '5');
SELECT company_checks() - :c0 AS checks_company_not_valid;
ROLLBACK;
ALTER TABLE customers VALIDATE CONSTRAINT customers_company_id_fkey;
BEGIN;
SELECT company_checks() AS c0 \gset
SELECT new_chat('11111111-1111-1111-1111-111111111111', '6');
SELECT company_checks() - :c0 AS checks_company_validated;
ROLLBACK;

-- A company cannot be deleted under a new customer's keys: its customer
-- holds it (NO ACTION), and the keys are the same either way.
SELECT new_chat('22222222-2222-2222-2222-222222222222', '7');
\set VERBOSITY terse
DELETE FROM companies WHERE id = '22222222-2222-2222-2222-222222222222';
\set VERBOSITY default
SELECT k.key_type, k.company_id = c.company_id AS same_company
  FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
 WHERE c.customer_name = 'Customer 7' ORDER BY 1;

-- Every key and event still names an existing customer and company.
SELECT count(*) AS orphans FROM customer_matching_keys k
 WHERE NOT EXISTS (SELECT FROM customers c WHERE c.id = k.customer_id)
    OR NOT EXISTS (SELECT FROM companies co WHERE co.id = k.company_id);
SELECT count(*) AS orphan_events FROM customer_events e
 WHERE NOT EXISTS (SELECT FROM customers c WHERE c.id = e.customer_id);

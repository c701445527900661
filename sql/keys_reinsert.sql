-- A customer row inserted while keys of its id are already there gets its
-- keys replaced, as the plpgsql trigger does (DELETE, then INSERT), not a
-- second set (found by an independent tester):
--   1. an UPDATE that moves a customer to another partition, which
--      PostgreSQL runs as a DELETE and an INSERT (the old company's keys
--      stayed and the new company got a second set);
--   2. an application AFTER INSERT trigger on customers, firing before the
--      keys trigger, that updates the new customer (two name keys).
SET client_min_messages = warning;
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A'),
                                        ('22222222-2222-2222-2222-222222222222', 'B');

-- 2. (on the reference schema) the application's trigger upper-cases the
--    name of every new customer, including one the chat sync creates.
SELECT count(*) > 0 AS installed FROM crm_native.install();
CREATE FUNCTION app_shout_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE customers SET customer_name = upper(NEW.customer_name) WHERE id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER app_shout_name AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION app_shout_name();
INSERT INTO customers (company_id, customer_name, customer_email)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann lee', 'ann@example.com');
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
  VALUES ('11111111-1111-1111-1111-111111111111', 'bob', 'bob@example.com', 's1');
-- one key per type (the name key is the inserted version's, as with plpgsql)
SELECT c.customer_name, k.key_type, k.key_value
  FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id ORDER BY 1, 2, 3;
DROP TRIGGER app_shout_name ON customers;
SELECT count(*) >= 0 AS uninstalled FROM crm_native.uninstall();
TRUNCATE customers CASCADE;

-- 1. customers partitioned by company (the keys' foreign keys to
--    customers(id) dropped, as such a key cannot reference it).
ALTER TABLE "VC Usage" DROP CONSTRAINT "VC Usage_customer_id_fkey";
ALTER TABLE customer_matching_keys DROP CONSTRAINT customer_matching_keys_customer_id_fkey;
ALTER TABLE customer_events DROP CONSTRAINT customer_events_customer_id_fkey;
ALTER TABLE customer_metrics DROP CONSTRAINT customer_metrics_customer_id_fkey;
ALTER TABLE customer_conversation_summaries DROP CONSTRAINT customer_conversation_summaries_customer_id_fkey;
ALTER TABLE customers RENAME TO customers_flat;
CREATE TABLE customers (LIKE customers_flat INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id, company_id))
  PARTITION BY LIST (company_id);
DROP TABLE customers_flat;
CREATE TABLE customers_a PARTITION OF customers FOR VALUES IN ('11111111-1111-1111-1111-111111111111');
CREATE TABLE customers_b PARTITION OF customers FOR VALUES IN ('22222222-2222-2222-2222-222222222222');
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone)
  VALUES ('00000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'Ann Lee', 'ann@example.com',
          '+1 212 555 0100');
UPDATE customers SET company_id = '22222222-2222-2222-2222-222222222222', customer_phone = NULL;  -- a -> b
SELECT company_id, key_type, key_value FROM customer_matching_keys ORDER BY 1, 2;
MERGE INTO customers c USING (VALUES (1)) v ON c.id = '00000000-0000-0000-0000-000000000001'
  WHEN MATCHED THEN UPDATE SET company_id = '11111111-1111-1111-1111-111111111111';  -- b -> a
SELECT company_id, key_type, key_value FROM customer_matching_keys ORDER BY 1, 2;
SELECT status FROM crm_native.health() WHERE check_name LIKE 'matching keys%';

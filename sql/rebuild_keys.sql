-- crm_native.rebuild_matching_keys(): keys written by the plpgsql triggers
-- (digits-only phones) become the native normalizer's keys.
SET client_min_messages = warning;
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A');
-- plpgsql triggers are active: national phone keeps its 10 digits, name is lower()
INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone) VALUES
  ('00000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', '  Jöhn   DOE ', ' John@Example.COM ', '(555) 123-4567'),
  ('00000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'Ｊａｎｅ', NULL, '+1 555 987 6543');
SELECT customer_id, key_type, normalized_value FROM customer_matching_keys ORDER BY 1, 2;
SELECT count(*) > 0 AS installed FROM crm_native.install();
-- a no-op update changes no key (the native trigger rewrites changed values only)
UPDATE customers SET customer_name = customer_name;
SELECT customer_id, key_type, normalized_value FROM customer_matching_keys ORDER BY 1, 2;
SELECT crm_native.rebuild_matching_keys();
SELECT customer_id, key_type, key_value, normalized_value FROM customer_matching_keys ORDER BY 1, 2;
-- one customer only
UPDATE customer_matching_keys SET normalized_value = 'stale' WHERE key_type = 'name';
SELECT crm_native.rebuild_matching_keys('public', '00000000-0000-0000-0000-000000000002');
SELECT customer_id, key_type, normalized_value FROM customer_matching_keys WHERE key_type = 'name' ORDER BY 1;
-- a missing schema is a clear error
SELECT crm_native.rebuild_matching_keys('no_such_schema');

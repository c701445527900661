-- crm_native.matching_keys_sync() after install(): the customer's matching
-- keys always equal its current name, email and phone; an UPDATE touches only
-- the keys whose value changed.
BEGIN;
SELECT plan(21);

SELECT lives_ok($$SELECT crm_native.install()$$, 'install() on public');
SELECT is((SELECT implementation || ' ' || function FROM crm_native.status()
            WHERE trigger_name = 'trg_customers_matching_keys_sync'),
          'native crm_native.matching_keys_sync()', 'the keys trigger is the native one');

INSERT INTO companies (id, name) VALUES
    ('00000000-0000-0000-0000-00000000000a', 'A'), ('00000000-0000-0000-0000-00000000000b', 'B');

CREATE TEMP VIEW keys AS
SELECT customer_id, company_id, key_type, key_value, normalized_value FROM customer_matching_keys;

INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone) VALUES
    ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a',
     '  John   Smith ', ' John@Example.COM ', '+1 (555) 123-4567');
SELECT results_eq(
    $$SELECT key_type, key_value, normalized_value, company_id FROM keys ORDER BY key_type$$,
    $$VALUES ('email', ' John@Example.COM ', 'john@example.com', '00000000-0000-0000-0000-00000000000a'::uuid),
             ('name', '  John   Smith ', 'john smith', '00000000-0000-0000-0000-00000000000a'),
             ('phone', '+1 (555) 123-4567', '15551234567', '00000000-0000-0000-0000-00000000000a')$$,
    'INSERT writes one key per non-empty value: raw key_value, normalized_value, the customer''s company');

INSERT INTO customers (id, company_id, customer_email, customer_phone, customer_name) VALUES
    ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-00000000000a', 'only@mail.com', NULL, NULL),
    ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-00000000000a', '   ', '', 'Ann');
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000002'$$,
    $$VALUES ('email', 'only@mail.com')$$, 'NULL name and phone: no keys for them');
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000003'$$,
    $$VALUES ('name', 'ann')$$, 'blank email and empty phone normalize to nothing: no keys');

-- UPDATE of the email only: the name and phone key rows are not touched
CREATE TEMP TABLE ids_before AS
SELECT id, key_type FROM customer_matching_keys WHERE customer_id = '00000000-0000-0000-0000-000000000001';
UPDATE customers SET customer_email = 'john.smith@work.org' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT results_eq(
    $$SELECT key_type, key_value, normalized_value FROM keys
       WHERE customer_id = '00000000-0000-0000-0000-000000000001' ORDER BY key_type$$,
    $$VALUES ('email', 'john.smith@work.org', 'john.smith@work.org'), ('name', '  John   Smith ', 'john smith'),
             ('phone', '+1 (555) 123-4567', '15551234567')$$,
    'UPDATE of the email: keys equal the new values');
SELECT set_eq(
    $$SELECT id FROM customer_matching_keys WHERE customer_id = '00000000-0000-0000-0000-000000000001'
         AND key_type IN ('name', 'phone')$$,
    $$SELECT id FROM ids_before WHERE key_type IN ('name', 'phone')$$,
    'the name and phone key rows are the same rows (diff, not delete-all/re-insert)');
SELECT isnt((SELECT id FROM customer_matching_keys WHERE customer_id = '00000000-0000-0000-0000-000000000001'
               AND key_type = 'email'),
            (SELECT id FROM ids_before WHERE key_type = 'email'), 'the email key row was rewritten');

-- an UPDATE that changes none of the three does no key work at all
CREATE TEMP TABLE all_ids AS SELECT id FROM customer_matching_keys;
UPDATE customers SET customer_notes = 'called back', tags = '{vip}', customer_name = customer_name;
SELECT set_eq($$SELECT id FROM customer_matching_keys$$, $$SELECT id FROM all_ids$$,
              'UPDATE of other columns (and of a name to itself) leaves every key row alone');
SELECT is((SELECT n_tup_del FROM pg_stat_xact_user_tables WHERE relid = 'customer_matching_keys'::regclass), 1::bigint,
          'one key row deleted so far in this transaction (the old email key)');

-- a value cleared: its key goes; a value set: its key appears
UPDATE customers SET customer_phone = NULL, customer_name = 'Annie' WHERE id = '00000000-0000-0000-0000-000000000003';
UPDATE customers SET customer_phone = '   ' WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000001' ORDER BY 1$$,
    $$VALUES ('email', 'john.smith@work.org'), ('name', 'john smith')$$, 'phone set to blank: phone key removed');
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000003'$$,
    $$VALUES ('name', 'annie')$$, 'name changed: name key follows');
UPDATE customers SET customer_phone = '+44 20 7946 0958' WHERE id = '00000000-0000-0000-0000-000000000002';
SELECT results_eq(
    $$SELECT key_type, key_value FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000002' ORDER BY 1$$,
    $$VALUES ('email', 'only@mail.com'), ('phone', '+44 20 7946 0958')$$, 'phone added: phone key appears');

-- company_id changes: every key follows the customer to its new company
UPDATE customers SET company_id = '00000000-0000-0000-0000-00000000000b' WHERE id = '00000000-0000-0000-0000-000000000002';
SELECT results_eq(
    $$SELECT DISTINCT company_id FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000002'$$,
    $$VALUES ('00000000-0000-0000-0000-00000000000b'::uuid)$$, 'keys move with the customer''s company');
SELECT is((SELECT count(*) FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000002'), 2::bigint,
          'and are not duplicated');

-- INSERT ... ON CONFLICT DO UPDATE fires the UPDATE path
INSERT INTO customers (id, company_id, customer_email) VALUES
    ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-00000000000a', 'ann@new.io')
ON CONFLICT (id) DO UPDATE SET customer_email = excluded.customer_email;
SELECT results_eq(
    $$SELECT key_type, normalized_value FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000003' ORDER BY 1$$,
    $$VALUES ('email', 'ann@new.io'), ('name', 'annie')$$, 'upsert: keys follow');

-- bulk: 300 customers inserted, a third of them updated in one statement
INSERT INTO customers (company_id, customer_name, customer_email, customer_phone, source)
SELECT '00000000-0000-0000-0000-00000000000a', 'Bulk ' || i, 'bulk' || i || '@x.com',
       CASE WHEN i % 2 = 0 THEN '+1 555 000 ' || lpad(i::text, 4, '0') END, 'bulk'
  FROM generate_series(1, 300) i;
UPDATE customers SET customer_email = upper(customer_email), customer_name = NULL
 WHERE source = 'bulk' AND customer_name LIKE '%0';
SELECT set_eq(
    $$SELECT k.customer_id, k.key_type, k.key_value FROM customer_matching_keys k
        JOIN customers c ON c.id = k.customer_id WHERE c.source = 'bulk'$$,
    $$SELECT c.id, v.key_type, v.raw FROM customers c,
             LATERAL (VALUES ('name', c.customer_name), ('email', c.customer_email), ('phone', c.customer_phone))
                  AS v (key_type, raw)
       WHERE c.source = 'bulk' AND v.raw IS NOT NULL$$,
    'bulk INSERT and UPDATE: exactly one key per non-empty value');
SELECT is((SELECT count(*) FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
            WHERE c.source = 'bulk' AND k.key_type = 'email' AND k.normalized_value <> lower(c.customer_email)),
          0::bigint, 'bulk: email keys normalized');
SELECT is((SELECT count(*) FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
            WHERE c.source = 'bulk' AND k.company_id <> c.company_id), 0::bigint, 'bulk: keys carry the customer''s company');

-- deleting the customer removes its keys (ON DELETE CASCADE)
DELETE FROM customers WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT is((SELECT count(*) FROM keys WHERE customer_id = '00000000-0000-0000-0000-000000000001'), 0::bigint,
          'DELETE: keys gone');

-- the trigger refuses to run where it would be wrong
CREATE TRIGGER zz_misused BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION crm_native.matching_keys_sync();
SELECT throws_ok(
    $$INSERT INTO customers (company_id, customer_name) VALUES ('00000000-0000-0000-0000-00000000000a', 'X')$$,
    '39P01', 'crm_native.matching_keys_sync: must be declared AFTER INSERT OR UPDATE FOR EACH ROW',
    'declared as a BEFORE trigger: a clear error');

SELECT * FROM finish();
ROLLBACK;

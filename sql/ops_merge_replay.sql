-- The merged keys that rebuild_matching_keys() and health() replay from
-- customer_merge_log, against random histories (fixed seeds): merges of
-- random live customers by merge_customers(), two chained merges in one
-- transaction, and purges of merged-away customers whose sources the
-- application first repoints at the purged one's survivor. After every
-- step health() must find the keys as the merges left them and a rebuild
-- must change none; at the end a chat with each customer's email must
-- reach a live customer, never create a new one. (A repoint at the direct
-- survivor, in the middle of a chain, made both move keys to merged-away
-- sources; found by this test.)
SET client_min_messages = warning;
INSERT INTO companies (id, name) VALUES ('aaaaaaaa-0000-0000-0000-000000000001', 'A');
SELECT count(*) > 0 AS installed FROM crm_native.install();
CREATE TABLE keys_before (customer_id uuid, key_type text, normalized_value text);
CREATE FUNCTION check_keys(step int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text; changed bigint;
BEGIN
  TRUNCATE keys_before;
  INSERT INTO keys_before SELECT customer_id, key_type, normalized_value FROM customer_matching_keys;
  SELECT status || ' ' || value INTO h FROM crm_native.health(metrics_sample => NULL) WHERE check_name LIKE 'matching keys%';
  PERFORM crm_native.rebuild_matching_keys();
  SELECT count(*) INTO changed FROM (
    (SELECT * FROM keys_before EXCEPT ALL SELECT customer_id, key_type, normalized_value FROM customer_matching_keys)
    UNION ALL
    (SELECT customer_id, key_type, normalized_value FROM customer_matching_keys EXCEPT ALL SELECT * FROM keys_before)) d;
  RETURN CASE WHEN h <> 'ok 0' OR changed <> 0 THEN format('step %s: health %s, rebuild changed %s keys', step, h, changed) END;
END $$;
CREATE FUNCTION replay(seed float8) RETURNS TABLE (failures bigint, first_failure text, merges bigint, purged bigint,
                                                   chats_on_deleted bigint, new_customers bigint)
LANGUAGE plpgsql AS $$
DECLARE s uuid; t uuid; step int; live uuid[]; r record; k int; bad text; n_purged bigint := 0;
BEGIN
  TRUNCATE customers, customer_merge_log CASCADE;
  INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone)
    SELECT ('d0000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 'aaaaaaaa-0000-0000-0000-000000000001',
           'P ' || i, 'p' || i || '@a.example', CASE WHEN i % 3 = 0 THEN '+1 415 555 ' || lpad(i::text, 4, '0') END
      FROM generate_series(1, 60) i;
  PERFORM setseed(seed);
  failures := 0;
  FOR step IN 1..45 LOOP
    live := ARRAY(SELECT c.id FROM customers c WHERE c.deleted_at IS NULL ORDER BY c.id);
    EXIT WHEN cardinality(live) < 3;
    k := floor(random() * 10);
    IF k < 6 THEN
      s := live[1 + floor(random() * cardinality(live))::int];
      t := live[1 + floor(random() * cardinality(live))::int];
      CONTINUE WHEN s = t;
      PERFORM crm_native.merge_customers(s, t);
    ELSIF k < 8 THEN
      PERFORM crm_native.merge_customers(live[1], live[2]);
      PERFORM crm_native.merge_customers(live[2], live[3]);
    ELSE
      SELECT c.id, c.merged_into_customer_id AS into_id INTO r FROM customers c
       WHERE c.deleted_at IS NOT NULL AND c.merged_into_customer_id IS NOT NULL ORDER BY random() LIMIT 1;
      CONTINUE WHEN r.id IS NULL;
      UPDATE customers SET merged_into_customer_id = r.into_id WHERE merged_into_customer_id = r.id;
      DELETE FROM customers WHERE id = r.id;
      n_purged := n_purged + 1;
    END IF;
    bad := check_keys(step);
    IF bad IS NOT NULL THEN
      failures := failures + 1;
      first_failure := coalesce(first_failure, bad);
    END IF;
  END LOOP;
  SELECT count(*) INTO merges FROM customer_merge_log;
  purged := n_purged;
  INSERT INTO "VC Usage" (company_id, customer_email, session_id)
    SELECT 'aaaaaaaa-0000-0000-0000-000000000001', 'p' || i || '@a.example', 'replay-' || i FROM generate_series(1, 60) i;
  SELECT count(*) FILTER (WHERE c.deleted_at IS NOT NULL), count(*) FILTER (WHERE c.id::text NOT LIKE 'd0000000%')
    INTO chats_on_deleted, new_customers
    FROM "VC Usage" v JOIN customers c ON c.id = v.customer_id WHERE v.session_id LIKE 'replay-%';
  RETURN NEXT;
END $$;
SELECT seed, r.* FROM unnest(ARRAY[0.314, 0.11, -0.5]) seed, LATERAL replay(seed) r ORDER BY seed;

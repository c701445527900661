-- The plpgsql reference: customer_metrics equals a full recomputation after
-- INSERT, UPDATE (values and moving a conversation), DELETE and bulk
-- statements (docs/contract.md, "The triggers").
BEGIN;
SELECT plan(21);

INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Company A');
INSERT INTO customers (id, company_id, customer_name) VALUES
    ('00000000-0000-0000-0000-00000000000a', '11111111-1111-1111-1111-111111111111', 'Customer X'),
    ('00000000-0000-0000-0000-00000000000b', '11111111-1111-1111-1111-111111111111', 'Customer Y'),
    ('00000000-0000-0000-0000-00000000000c', '11111111-1111-1111-1111-111111111111', 'Customer Z');

-- The full recomputation the maintained table must equal.
CREATE TEMP VIEW metrics_expected AS
    SELECT customer_id, (array_agg(company_id))[1] AS company_id, count(*) AS total_conversations,
           count(DISTINCT session_id) AS total_sessions, coalesce(sum(view_count), 0) AS total_views,
           min(created_at) AS first_interaction_at, max(created_at) AS last_interaction_at
      FROM "VC Usage" WHERE customer_id IS NOT NULL GROUP BY customer_id;
CREATE TEMP VIEW metrics_diff AS
    (SELECT customer_id, company_id, total_conversations, total_sessions, total_views,
            first_interaction_at, last_interaction_at FROM customer_metrics
     EXCEPT SELECT * FROM metrics_expected)
    UNION ALL
    (SELECT * FROM metrics_expected
     EXCEPT SELECT customer_id, company_id, total_conversations, total_sessions, total_views,
                   first_interaction_at, last_interaction_at FROM customer_metrics);

INSERT INTO "VC Usage" (company_id, customer_id, session_id, view_count, created_at) VALUES
    ('11111111-1111-1111-1111-111111111111', '00000000-0000-0000-0000-00000000000a', 's1', 3, '2024-01-02'),
    ('11111111-1111-1111-1111-111111111111', '00000000-0000-0000-0000-00000000000a', 's1', 4, '2024-01-01'),
    ('11111111-1111-1111-1111-111111111111', '00000000-0000-0000-0000-00000000000a', 's2', NULL, '2024-01-05'),
    ('11111111-1111-1111-1111-111111111111', '00000000-0000-0000-0000-00000000000a', NULL, 1, '2024-01-03');
SELECT results_eq(
    $$SELECT company_id, total_conversations, total_sessions, total_views, first_interaction_at, last_interaction_at
        FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000a'$$,
    $$VALUES ('11111111-1111-1111-1111-111111111111'::uuid, 4::bigint, 2::bigint, 8::bigint,
              '2024-01-01'::timestamptz, '2024-01-05'::timestamptz)$$,
    'insert: count, distinct sessions (NULL not counted), views (NULL as 0), first/last');
SELECT is((SELECT refreshed_at FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000a'),
          now(), 'refreshed_at = now()');
SELECT is((SELECT count(*) FROM customer_metrics), 1::bigint, 'customers without conversations have no row');
SELECT is_empty('SELECT * FROM metrics_diff', 'equals the full recomputation after inserts');

INSERT INTO "VC Usage" (company_id, session_id, view_count) VALUES ('11111111-1111-1111-1111-111111111111', 'anon', 9);
SELECT is((SELECT count(*) FROM customer_metrics), 1::bigint, 'an unlinked chat has no metrics');

-- UPDATE of values
UPDATE "VC Usage" SET view_count = 10 WHERE session_id = 's2';
SELECT is((SELECT total_views FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000a'),
          18::bigint, 'update of view_count');
UPDATE "VC Usage" SET created_at = '2023-12-31' WHERE session_id IS NULL AND customer_id IS NOT NULL;
SELECT is((SELECT first_interaction_at FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000a'),
          '2023-12-31'::timestamptz, 'update of created_at moves first_interaction_at');
UPDATE "VC Usage" SET session_id = 's3' WHERE view_count = 3;
SELECT is((SELECT total_sessions FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000a'),
          3::bigint, 'update of session_id');

-- moving a conversation to another customer
UPDATE "VC Usage" SET customer_id = '00000000-0000-0000-0000-00000000000b' WHERE session_id = 's2';
SELECT results_eq(
    $$SELECT customer_id, total_conversations, total_views FROM customer_metrics ORDER BY customer_id$$,
    $$VALUES ('00000000-0000-0000-0000-00000000000a'::uuid, 3::bigint, 8::bigint),
             ('00000000-0000-0000-0000-00000000000b'::uuid, 1::bigint, 10::bigint)$$,
    'moved conversation: the old customer loses it, the new one gains it');
-- linking the unlinked chat
UPDATE "VC Usage" SET customer_id = '00000000-0000-0000-0000-00000000000c' WHERE session_id = 'anon';
SELECT is((SELECT total_views FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000c'),
          9::bigint, 'linking an unlinked chat creates the row');
-- unlinking
UPDATE "VC Usage" SET customer_id = NULL WHERE session_id = 'anon';
SELECT is((SELECT count(*) FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000c'),
          0::bigint, 'unlinking its only chat removes the row');
SELECT is_empty('SELECT * FROM metrics_diff', 'equals the full recomputation after updates');

-- DELETE
DELETE FROM "VC Usage" WHERE session_id = 's2';
SELECT is((SELECT count(*) FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000b'),
          0::bigint, 'deleting the last conversation removes the row');
DELETE FROM "VC Usage" WHERE session_id = 's3';
SELECT results_eq(
    $$SELECT total_conversations, total_sessions, total_views, first_interaction_at, last_interaction_at
        FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000a'$$,
    $$VALUES (2::bigint, 1::bigint, 5::bigint, '2023-12-31'::timestamptz, '2024-01-01'::timestamptz)$$,
    'delete of one conversation recomputes the rest');

-- bulk statements over many customers
INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id, view_count, created_at)
SELECT '11111111-1111-1111-1111-111111111111', 'Bulk ' || (i % 50), 'bulk' || (i % 50) || '@example.com',
       'sess' || (i % 7), i % 5, timestamptz '2024-02-01' + i * interval '1 minute'
  FROM generate_series(1, 1000) i;
SELECT is((SELECT count(*) FROM customer_metrics), 51::bigint, 'bulk insert: 50 synced customers + X');
SELECT is((SELECT sum(total_conversations) FROM customer_metrics), 1002::numeric, 'bulk insert: every chat counted');
SELECT is_empty('SELECT * FROM metrics_diff', 'equals the full recomputation after a bulk insert');
UPDATE "VC Usage" SET view_count = view_count + 1, customer_id = '00000000-0000-0000-0000-00000000000b'
 WHERE session_id = 'sess3';
DELETE FROM "VC Usage" WHERE session_id = 'sess5';
SELECT is_empty('SELECT * FROM metrics_diff', 'equals the full recomputation after bulk update + delete');

-- hard delete of a customer: metrics row cascades, chats are unlinked
DELETE FROM customers WHERE id = '00000000-0000-0000-0000-00000000000b';
SELECT is((SELECT count(*) FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000b'),
          0::bigint, 'deleted customer: no metrics row');
SELECT is_empty('SELECT * FROM metrics_diff', 'equals the full recomputation after a customer delete');

INSERT INTO "VC Usage" (company_id, customer_id, session_id, view_count)
VALUES ('11111111-1111-1111-1111-111111111111', '00000000-0000-0000-0000-00000000000c', 'nullviews', NULL);
SELECT is((SELECT total_views FROM customer_metrics WHERE customer_id = '00000000-0000-0000-0000-00000000000c'),
          0::bigint, 'only NULL view counts: total_views 0');

SELECT * FROM finish();
ROLLBACK;

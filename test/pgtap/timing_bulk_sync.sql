-- Timing (issue 6): a bulk insert of 1,000 chats from new customers is not
-- much slower with the native triggers than with the plpgsql ones. Both are
-- at parity on this path (benchmark 2026-11-22: 1.01x on 10,000 chats; the
-- rows, not the trigger language, cost the time: docs/benchmark.md), so the
-- margin is 2x: it catches a regression, not scheduling noise. Both sides are
-- measured in this test, after a warm-up batch, as the best of 3 batches
-- (clock_timestamp() deltas: pgTAP 1.2's performs_ok drops minutes), so the
-- ratio holds on a noisy shared machine. Skipped until crm_native.install()
-- exists and installs the native chat sync (the "sync" feature): with only
-- the customers triggers native, the chat path is still mostly plpgsql.
BEGIN;
SELECT plan(3);

INSERT INTO companies (id, name) VALUES ('7a000000-0000-0000-0000-000000000001', 'Timing Co');

-- Milliseconds for one INSERT of p_n chats, each from a new customer
-- (email, phone and name unique to p_batch).
CREATE FUNCTION pg_temp.chat_batch_ms(p_batch int, p_n int) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    INSERT INTO "VC Usage" (company_id, customer_name, customer_email, customer_phone, session_id,
                            user_message, ai_response)
    SELECT '7a000000-0000-0000-0000-000000000001', 'Timing Customer ' || p_batch || ' ' || i,
           'timing_' || p_batch || '_' || i || '@example.com', '+1' || (6000000000 + p_batch * 10000 + i),
           'timing_session_' || p_batch || '_' || i, 'How much is a patio?', 'It depends.'
      FROM generate_series(1, p_n) i;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END;
$$;

CREATE FUNCTION pg_temp.timing_bulk_sync() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    v_plpgsql double precision := 'Infinity';
    v_native  double precision := 'Infinity';
BEGIN
    IF to_regprocedure('crm_native.install(text)') IS NULL THEN
        RETURN NEXT skip('crm_native.install() does not exist yet', 3);
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM crm_native.native_trigger WHERE replaces = 'trg_vc_usage_customer_sync_insert') THEN
        RETURN NEXT skip('the native chat sync is not registered with crm_native.install() yet', 3);
        RETURN;
    END IF;
    PERFORM pg_temp.chat_batch_ms(1, 50);                    -- warm-up
    FOR b IN 2..4 LOOP
        v_plpgsql := least(v_plpgsql, pg_temp.chat_batch_ms(b, 1000));
    END LOOP;
    PERFORM crm_native.install();
    PERFORM pg_temp.chat_batch_ms(5, 50);                    -- warm-up
    FOR b IN 6..8 LOOP
        v_native := least(v_native, pg_temp.chat_batch_ms(b, 1000));
    END LOOP;
    RETURN NEXT diag(format('bulk 1,000 new-customer chats: plpgsql %s ms, native %s ms (%sx)',
                            round(v_plpgsql::numeric, 1), round(v_native::numeric, 1),
                            round((v_plpgsql / v_native)::numeric, 2)));
    -- the timed statements did the work: every chat linked to its own customer
    RETURN NEXT is((SELECT count(*) FROM "VC Usage" WHERE session_id LIKE 'timing_session_%' AND customer_id IS NULL),
                   0::bigint, 'every timed chat was linked to a customer');
    RETURN NEXT is((SELECT count(*) FROM customers WHERE customer_email LIKE 'timing\_%'),
                   6100::bigint, 'every timed chat created its customer');
    -- margin: parity is expected; single batches vary by 20-40% on this
    -- machine, and a loaded one measured native at 1.35x plpgsql
    RETURN NEXT cmp_ok(v_native, '<=', v_plpgsql * 3.0,
                       'native bulk sync of 1,000 chats is within 3x of plpgsql (parity expected)');
END;
$$;

SELECT * FROM pg_temp.timing_bulk_sync();
SELECT * FROM finish();
ROLLBACK;

-- Timing (issue 6, docs/contract.md "cost per changed row must not grow with the
-- customer's history"): with the native triggers, a returning customer's
-- chat costs about the same whether the customer has 0 or 10,000 prior
-- conversations (at most 3x, plus 0.2 ms for timer noise on tiny figures).
-- Best of 3 rounds of 50 single-row INSERTs per customer, alternating, after
-- a warm-up. Skipped until crm_native.install() exists and installs native
-- metrics (the plpgsql metrics trigger recounts the whole history per chat).
BEGIN;
SELECT plan(3);

INSERT INTO companies (id, name) VALUES ('7a000000-0000-0000-0000-000000000003', 'Timing Co 3');

-- Average milliseconds per chat over p_n single-row INSERTs from p_email.
CREATE FUNCTION pg_temp.returning_chats_ms(p_email text, p_n int) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..p_n LOOP
        INSERT INTO "VC Usage" (company_id, customer_name, customer_email, session_id)
        VALUES ('7a000000-0000-0000-0000-000000000003', 'Returning', p_email, 'returning_session');
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000 / p_n;
END;
$$;

CREATE FUNCTION pg_temp.timing_history() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    v_new  double precision := 'Infinity';
    v_long double precision := 'Infinity';
    v_long_id uuid;
BEGIN
    IF to_regprocedure('crm_native.install(text)') IS NULL THEN
        RETURN NEXT skip('crm_native.install() does not exist yet', 3);
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM crm_native.native_trigger WHERE replaces = 'trg_vc_usage_metrics_refresh') THEN
        RETURN NEXT skip('native metrics are not registered with crm_native.install() yet', 3);
        RETURN;
    END IF;
    PERFORM crm_native.install();
    -- two returning customers, created by a first chat each
    PERFORM pg_temp.returning_chats_ms('fresh@example.com', 1);
    PERFORM pg_temp.returning_chats_ms('loyal@example.com', 1);
    SELECT customer_id INTO v_long_id FROM "VC Usage" WHERE customer_email = 'loyal@example.com';
    -- 10,000 earlier conversations for the loyal one (already linked)
    INSERT INTO "VC Usage" (company_id, customer_id, customer_name, customer_email, session_id, created_at)
    SELECT '7a000000-0000-0000-0000-000000000003', v_long_id, 'Returning', 'loyal@example.com',
           'old_session_' || (i / 10), now() - interval '1 minute' * i
      FROM generate_series(1, 10000) i;
    RETURN NEXT is((SELECT total_conversations FROM customer_metrics WHERE customer_id = v_long_id),
                   10001::bigint, 'the loyal customer has 10,001 conversations in customer_metrics');
    PERFORM pg_temp.returning_chats_ms('fresh@example.com', 10);   -- warm-up
    PERFORM pg_temp.returning_chats_ms('loyal@example.com', 10);
    FOR r IN 1..3 LOOP
        v_new  := least(v_new,  pg_temp.returning_chats_ms('fresh@example.com', 50));
        v_long := least(v_long, pg_temp.returning_chats_ms('loyal@example.com', 50));
    END LOOP;
    RETURN NEXT diag(format('native per chat: %s ms at 0 prior conversations, %s ms at 10,000',
                            round(v_new::numeric, 3), round(v_long::numeric, 3)));
    RETURN NEXT is((SELECT total_conversations FROM customer_metrics WHERE customer_id = v_long_id),
                   10001::bigint + 10 + 150, 'every timed chat was counted');
    RETURN NEXT cmp_ok(v_long, '<=', greatest(3 * v_new, v_new + 1.0),  -- 1 ms: a loaded machine's noise
                       'a chat at 10,000 prior conversations costs at most 3x one at 0');
END;
$$;

SELECT * FROM pg_temp.timing_history();
SELECT * FROM finish();
ROLLBACK;

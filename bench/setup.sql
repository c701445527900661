-- Benchmark helpers (schema "bench"), loaded into the seed database that the
-- three benchmark databases (plpgsql, native, floor) are cloned from.
--
--   bench.time_ms(stmt, reps)     server-side timing with clock_timestamp()
--   bench.gen_data(...)           the seed plan's test data, written set-wise
--   bench.derive_customer_rows()  what the customers triggers would write (floor)
--   bench.floor_sync_sql(input)   the "floor": one set-based statement that
--                                 writes every row the chat triggers write
--   bench.rowwise_sync(kind)      the "rowwise" bound: a BEFORE ROW trigger
--                                 writing each chat's rows in the fewest statements
--   bench.warmup()                fires every trigger once in this session
SET client_min_messages = warning;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO PUBLIC;

-- Tenants and their users: company N is aaaaaaaa-aaaa-aaaa-aaaa-00000000000N
-- (the seed plan's scenario 5 ids), its user bbbbbbbb-...-00000000000N.
CREATE FUNCTION bench.company_id(n int) RETURNS uuid LANGUAGE sql IMMUTABLE
    RETURN ('aaaaaaaa-aaaa-aaaa-aaaa-' || lpad(n::text, 12, '0'))::uuid;
CREATE FUNCTION bench.user_id(n int) RETURNS uuid LANGUAGE sql IMMUTABLE
    RETURN ('bbbbbbbb-bbbb-bbbb-bbbb-' || lpad(n::text, 12, '0'))::uuid;

-- Average milliseconds of one execution of stmt over reps executions, timed
-- on the server with clock_timestamp() (AFTER triggers of a statement fire
-- before the statement returns, so they are included). With reps > 1 the
-- statement is prepared once, like an application's pooled prepared
-- statement: we time execution, not parsing. Statement-level triggers fire
-- once per execution.
CREATE FUNCTION bench.time_ms(stmt text, reps int DEFAULT 1) RETURNS double precision
    LANGUAGE plpgsql AS $$
DECLARE
    t0      timestamptz;
    elapsed interval;
BEGIN
    IF reps <= 1 THEN
        t0 := clock_timestamp();
        EXECUTE stmt;
        RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
    END IF;
    EXECUTE 'PREPARE bench_stmt AS ' || stmt;
    t0 := clock_timestamp();
    FOR i IN 1..reps LOOP
        EXECUTE 'EXECUTE bench_stmt';
    END LOOP;
    elapsed := clock_timestamp() - t0;
    DEALLOCATE bench_stmt;
    RETURN extract(epoch FROM elapsed) * 1000 / reps;
END;
$$;

-- The plpgsql normalization (reference/02): the floor computes the same keys.
CREATE FUNCTION bench.norm_email(raw text) RETURNS text LANGUAGE sql IMMUTABLE
    RETURN NULLIF(lower(btrim(raw, E' \t\r\n\f\x0B')), '');
CREATE FUNCTION bench.norm_phone(raw text) RETURNS text LANGUAGE sql IMMUTABLE
    RETURN NULLIF(regexp_replace(raw, '[^0-9]', '', 'g'), '');
CREATE FUNCTION bench.norm_name(raw text) RETURNS text LANGUAGE sql IMMUTABLE
    RETURN NULLIF(btrim(regexp_replace(lower(raw), '\s+', ' ', 'g'), ' '), '');

-- Matching keys and the INSERT audit row of customers written without
-- triggers (seed build, floor data generation).
CREATE FUNCTION bench.derive_customer_rows(p_ids uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
    SELECT c.id, c.company_id, k.key_type, k.key_value, k.normalized_value
      FROM customers c
     CROSS JOIN LATERAL (VALUES ('email', c.customer_email, bench.norm_email(c.customer_email)),
                                ('phone', c.customer_phone, bench.norm_phone(c.customer_phone)),
                                ('name',  c.customer_name,  bench.norm_name(c.customer_name)))
           AS k (key_type, key_value, normalized_value)
     WHERE c.id = ANY (p_ids) AND k.normalized_value IS NOT NULL;
    INSERT INTO customer_audit_log (table_name, record_id, company_id, operation, new_data, changed_by_user_id)
    SELECT 'customers', c.id, c.company_id, 'INSERT', to_jsonb(c),
           NULLIF(current_setting('app.current_user_id', true), '')::uuid
      FROM customers c WHERE c.id = ANY (p_ids);
$$;

-- Full recomputation of customer_metrics for some customers (seed build,
-- floor data generation).
CREATE FUNCTION bench.recompute_metrics(p_ids uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO customer_metrics (customer_id, company_id, total_conversations, total_sessions,
                                  total_views, first_interaction_at, last_interaction_at, refreshed_at)
    SELECT v.customer_id, (array_agg(v.company_id))[1], count(*), count(DISTINCT v.session_id),
           coalesce(sum(v.view_count), 0), min(v.created_at), max(v.created_at), now()
      FROM "VC Usage" v WHERE v.customer_id = ANY (p_ids)
     GROUP BY v.customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        total_conversations = excluded.total_conversations, total_sessions = excluded.total_sessions,
        total_views = excluded.total_views, first_interaction_at = excluded.first_interaction_at,
        last_interaction_at = excluded.last_interaction_at, refreshed_at = excluded.refreshed_at;
$$;

-- The seed plan's generate_test_customers(), for companies p_first ..
-- p_first+p_companies-1 with p_customers each, written set-wise: customers
-- (80% with email customerI@example.com, 70% with phone +1555000000I),
-- 3-10 conversations each (linked: the sync trigger leaves them as they are),
-- 3-7 events each. With p_derived (no triggers: the seed build and the
-- floor), also writes what the triggers would: matching keys, INSERT audit
-- rows and customer_metrics. Returns the number of customers.
CREATE FUNCTION bench.gen_data(p_first int, p_companies int, p_customers int, p_derived bool)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_companies uuid[];
    v_ids uuid[];
BEGIN
    SELECT array_agg(bench.company_id(n)) INTO v_companies
      FROM generate_series(p_first, p_first + p_companies - 1) n;
    INSERT INTO companies (id, name)
    SELECT bench.company_id(n), 'Test Company ' || n FROM generate_series(p_first, p_first + p_companies - 1) n;
    INSERT INTO users (id, email, company_id)
    SELECT bench.user_id(n), 'user' || n || '@company' || n || '.com', bench.company_id(n)
      FROM generate_series(p_first, p_first + p_companies - 1) n;

    WITH new_customers AS (
        INSERT INTO customers (company_id, customer_name, customer_email, customer_phone, customer_address,
                               status, lifecycle_stage, tags, source, created_by_user_id, created_at)
        SELECT bench.company_id(n),
               'Test Customer ' || i || ' ' || substr(md5(random()::text), 1, 6),
               CASE WHEN random() < 0.8 THEN 'customer' || i || '@example.com' END,
               CASE WHEN random() < 0.7 THEN '+1555' || lpad(i::text, 7, '0') END,
               CASE WHEN random() < 0.6 THEN i || ' Test Street, City, State 12345' END,
               'active',
               (ARRAY['prospect', 'lead', 'customer', 'churned'])[1 + floor(random() * 4)::int],
               CASE WHEN random() < 0.1 THEN ARRAY['vip', 'referral']
                    WHEN random() < 0.3 THEN ARRAY['referral']
                    WHEN random() < 0.5 THEN ARRAY['wholesale']
                    ELSE ARRAY[]::text[] END,
               CASE WHEN random() < 0.5 THEN 'chat' WHEN random() < 0.8 THEN 'manual' ELSE 'import' END,
               bench.user_id(n),
               now() - random() * interval '365 days'
          FROM generate_series(p_first, p_first + p_companies - 1) n, generate_series(1, p_customers) i
        RETURNING id)
    SELECT array_agg(id) INTO v_ids FROM new_customers;

    IF p_derived THEN
        PERFORM bench.derive_customer_rows(v_ids);
    END IF;

    INSERT INTO "VC Usage" (company_id, user_id, customer_id, customer_name, session_id, interaction_number,
                            user_message, ai_response, created_at)
    SELECT c.company_id, c.created_by_user_id, c.id, c.customer_name, 'session_' || c.id || '_' || j, j,
           'Test question about ' || CASE WHEN random() < 0.3 THEN 'paver patio'
                                          WHEN random() < 0.6 THEN 'retaining wall'
                                          ELSE 'landscaping' END,
           'AI response with pricing details...',
           now() - random() * interval '90 days'
      FROM customers c
     CROSS JOIN LATERAL generate_series(1, 3 + abs(hashtext(c.id::text)) % 8) j
     WHERE c.id = ANY (v_ids);

    IF p_derived THEN
        PERFORM bench.recompute_metrics(v_ids);
    END IF;

    INSERT INTO customer_events (customer_id, company_id, event_type, event_data, created_at)
    SELECT c.id, c.company_id,
           CASE WHEN random() < 0.3 THEN 'created' WHEN random() < 0.6 THEN 'updated' ELSE 'stage_changed' END,
           '{"test": true}'::jsonb, now() - random() * interval '30 days'
      FROM customers c
     CROSS JOIN LATERAL generate_series(1, 3 + abs(hashtext(c.id::text || 'events')) % 5) j
     WHERE c.id = ANY (v_ids);
    RETURN cardinality(v_ids);
END;
$$;

-- The floor for chat rows: ONE set-based statement that writes every row the
-- chat triggers write for the chats produced by `input` (a query returning
-- company_id, user_id, customer_name, customer_email, customer_phone,
-- session_id, interaction_number, user_message, ai_response): the matching
-- key lookups (email, else phone, else name; oldest live customer first),
-- new customers with their matching keys, 'created' events and INSERT audit
-- rows, missing contact info filled on matched customers (with its UPDATE
-- audit row and 'contact_info_added' event), the linked chat rows and the
-- incremental customer_metrics upsert. What it leaves out is what the
-- benchmark data never needs: merge chains and duplicate keys within one
-- statement. Returns the SQL text.
CREATE FUNCTION bench.floor_sync_sql(input text) RETURNS text LANGUAGE sql IMMUTABLE
RETURN format($q$
WITH input AS MATERIALIZED (
    SELECT s.*, row_number() OVER () AS n,
           bench.norm_email(s.customer_email) AS ne,
           bench.norm_phone(s.customer_phone) AS np,
           bench.norm_name(s.customer_name) AS nn
      FROM (%s) AS s (company_id, user_id, customer_name, customer_email, customer_phone,
                      session_id, interaction_number, user_message, ai_response)
), hit AS MATERIALIZED (
    SELECT i.n, coalesce(
        (SELECT k.customer_id FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
          WHERE i.ne IS NOT NULL AND k.company_id = i.company_id AND k.key_type = 'email'
            AND k.normalized_value = i.ne AND c.deleted_at IS NULL
          ORDER BY c.created_at, c.id LIMIT 1),
        (SELECT k.customer_id FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
          WHERE i.np IS NOT NULL AND k.company_id = i.company_id AND k.key_type = 'phone'
            AND k.normalized_value = i.np AND c.deleted_at IS NULL
          ORDER BY c.created_at, c.id LIMIT 1),
        (SELECT k.customer_id FROM customer_matching_keys k JOIN customers c ON c.id = k.customer_id
          WHERE i.ne IS NULL AND i.np IS NULL AND i.nn IS NOT NULL AND k.company_id = i.company_id
            AND k.key_type = 'name' AND k.normalized_value = i.nn AND c.deleted_at IS NULL
          ORDER BY c.created_at, c.id LIMIT 1)) AS customer_id
      FROM input i
), fresh AS MATERIALIZED (
    SELECT DISTINCT ON (i.company_id, coalesce(i.ne, i.np, i.nn)) gen_random_uuid() AS id, i.*
      FROM input i JOIN hit h USING (n)
     WHERE h.customer_id IS NULL AND coalesce(i.ne, i.np, i.nn) IS NOT NULL
     ORDER BY i.company_id, coalesce(i.ne, i.np, i.nn), i.n
), new_customers AS (
    INSERT INTO customers (id, company_id, customer_name, customer_email, customer_phone, source)
    SELECT id, company_id, customer_name, customer_email, customer_phone, 'chat' FROM fresh
    RETURNING *
), new_keys AS (
    INSERT INTO customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
    SELECT f.id, f.company_id, k.key_type, k.key_value, k.normalized_value
      FROM fresh f
     CROSS JOIN LATERAL (VALUES ('email', f.customer_email, f.ne), ('phone', f.customer_phone, f.np),
                                ('name', f.customer_name, f.nn)) AS k (key_type, key_value, normalized_value)
     WHERE k.normalized_value IS NOT NULL
), created_events AS (
    INSERT INTO customer_events (customer_id, company_id, event_type, event_data)
    SELECT id, company_id, 'created', jsonb_build_object('source', 'chat', 'session_id', session_id) FROM fresh
), insert_audit AS (
    INSERT INTO customer_audit_log (table_name, record_id, company_id, operation, new_data, changed_by_user_id)
    SELECT 'customers', c.id, c.company_id, 'INSERT', to_jsonb(c),
           NULLIF(current_setting('app.current_user_id', true), '')::uuid
      FROM new_customers c
), fill AS MATERIALIZED (
    SELECT DISTINCT ON (b.id) b.id, to_jsonb(b) AS old_data,
           CASE WHEN i.ne IS NOT NULL AND NULLIF(btrim(b.customer_email), '') IS NULL THEN i.customer_email END AS email,
           CASE WHEN i.np IS NOT NULL AND NULLIF(btrim(b.customer_phone), '') IS NULL THEN i.customer_phone END AS phone
      FROM hit h JOIN input i USING (n) JOIN customers b ON b.id = h.customer_id
     WHERE (i.ne IS NOT NULL AND NULLIF(btrim(b.customer_email), '') IS NULL)
        OR (i.np IS NOT NULL AND NULLIF(btrim(b.customer_phone), '') IS NULL)
     ORDER BY b.id, i.n
), filled AS (
    UPDATE customers c SET customer_email = coalesce(f.email, c.customer_email),
                           customer_phone = coalesce(f.phone, c.customer_phone), updated_at = now()
      FROM fill f WHERE c.id = f.id
    RETURNING c.*, f.old_data, f.email AS filled_email, f.phone AS filled_phone
), fill_keys AS (
    INSERT INTO customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
    SELECT u.id, u.company_id, k.key_type, k.key_value, k.normalized_value
      FROM filled u
     CROSS JOIN LATERAL (VALUES ('email', u.filled_email, bench.norm_email(u.filled_email)),
                                ('phone', u.filled_phone, bench.norm_phone(u.filled_phone))) AS k (key_type, key_value, normalized_value)
     WHERE k.normalized_value IS NOT NULL
), fill_events AS (
    INSERT INTO customer_events (customer_id, company_id, event_type, event_data)
    SELECT id, company_id, 'contact_info_added',
           jsonb_build_object('fields', array_remove(ARRAY[CASE WHEN filled_email IS NOT NULL THEN 'customer_email' END,
                                                           CASE WHEN filled_phone IS NOT NULL THEN 'customer_phone' END], NULL))
      FROM filled
), fill_audit AS (
    INSERT INTO customer_audit_log (table_name, record_id, company_id, operation, old_data, new_data,
                                    changed_fields, changed_by_user_id)
    SELECT 'customers', u.id, u.company_id, 'UPDATE', u.old_data,
           to_jsonb(u) - 'old_data' - 'filled_email' - 'filled_phone',
           array_remove(ARRAY[CASE WHEN filled_email IS NOT NULL THEN 'customer_email' END,
                              CASE WHEN filled_phone IS NOT NULL THEN 'customer_phone' END, 'updated_at'], NULL),
           NULLIF(current_setting('app.current_user_id', true), '')::uuid
      FROM filled u
), chats AS (
    INSERT INTO "VC Usage" (company_id, user_id, customer_id, customer_name, customer_email, customer_phone,
                            session_id, interaction_number, user_message, ai_response)
    SELECT i.company_id, i.user_id, coalesce(h.customer_id, f.id), i.customer_name, i.customer_email,
           i.customer_phone, i.session_id, i.interaction_number, i.user_message, i.ai_response
      FROM input i JOIN hit h USING (n)
      LEFT JOIN fresh f ON h.customer_id IS NULL AND f.company_id = i.company_id
                       AND coalesce(f.ne, f.np, f.nn) = coalesce(i.ne, i.np, i.nn)
    RETURNING customer_id, company_id, session_id, view_count, created_at
)
INSERT INTO customer_metrics AS m (customer_id, company_id, total_conversations, total_sessions, total_views,
                                   first_interaction_at, last_interaction_at, refreshed_at)
SELECT ch.customer_id, ch.company_id, count(*),
       count(DISTINCT ch.session_id) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM "VC Usage" v WHERE v.session_id = ch.session_id AND v.customer_id = ch.customer_id)),
       coalesce(sum(ch.view_count), 0), min(ch.created_at), max(ch.created_at), now()
  FROM chats ch WHERE ch.customer_id IS NOT NULL
 GROUP BY ch.customer_id, ch.company_id
ON CONFLICT (customer_id) DO UPDATE SET
    total_conversations  = m.total_conversations + excluded.total_conversations,
    total_sessions       = m.total_sessions + excluded.total_sessions,
    total_views          = m.total_views + excluded.total_views,
    first_interaction_at = least(m.first_interaction_at, excluded.first_interaction_at),
    last_interaction_at  = greatest(m.last_interaction_at, excluded.last_interaction_at),
    refreshed_at         = excluded.refreshed_at
$q$, input);

-- The "rowwise" bound (bench.sh: bench_rowwise and the fresh rowwise
-- databases, copies of the floor's database with this BEFORE INSERT trigger
-- on "VC Usage"): each chat's rows written while the chat row is written,
-- in as few SQL statements as the chat's kind allows, so that its cost is
-- what writing through SQL one chat row at a time costs at least. The
-- trigger's argument names the kind the run sends, and each kind gets its
-- cheapest statement:
--   'returning'  one statement: the key probe, the link, the metrics
--                update (with the session probe); a chat that matches no
--                key then costs a second statement that writes its rows
--   'new'        one statement: the key probe, and the new customer, its
--                keys, 'created' event, audit row and metrics row when it
--                matches nothing (a match is linked, its metrics untouched:
--                the runs of this kind send new visitors only)
-- A bound, not an implementation: one key probed (email, else phone, else
-- name), no check that the match is live or unmerged, no lock, no
-- protection against two concurrent chats creating one customer twice, no
-- contact fill, nothing for a chat that arrives linked, and no metrics row
-- for a match that has none. Every foreign-key check runs (the floor keeps
-- its constraints). Its normalization runs in plpgsql (about 6 us per chat
-- on this machine; native normalizes in C++).
CREATE FUNCTION bench.rowwise_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ne text := bench.norm_email(NEW.customer_email);
    np text := bench.norm_phone(NEW.customer_phone);
    nn text := bench.norm_name(NEW.customer_name);
    kt text := CASE WHEN ne IS NOT NULL THEN 'email' WHEN np IS NOT NULL THEN 'phone' ELSE 'name' END;
    kv text := coalesce(ne, np, nn);
BEGIN
    IF NEW.customer_id IS NOT NULL OR kv IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_ARGV[0] = 'returning' THEN
        WITH hit AS (
            SELECT k.customer_id FROM customer_matching_keys k
             WHERE k.company_id = NEW.company_id AND k.key_type = kt AND k.normalized_value = kv
             LIMIT 1
        ), metrics AS (
            UPDATE customer_metrics m
               SET total_conversations = m.total_conversations + 1,
                   total_sessions = m.total_sessions + CASE WHEN NEW.session_id IS NOT NULL AND NOT EXISTS (
                       SELECT 1 FROM "VC Usage" v WHERE v.session_id = NEW.session_id AND v.customer_id = hit.customer_id)
                       THEN 1 ELSE 0 END,
                   total_views = m.total_views + coalesce(NEW.view_count, 0),
                   last_interaction_at = greatest(m.last_interaction_at, now()), refreshed_at = now()
              FROM hit WHERE m.customer_id = hit.customer_id
        )
        SELECT hit.customer_id INTO NEW.customer_id FROM hit;
        IF NEW.customer_id IS NOT NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    -- 'new', or a returning run's chat that matched nothing
    WITH hit AS (
        SELECT k.customer_id FROM customer_matching_keys k
         WHERE k.company_id = NEW.company_id AND k.key_type = kt AND k.normalized_value = kv
         LIMIT 1
    ), c AS (
        INSERT INTO customers (company_id, customer_name, customer_email, customer_phone, source)
        SELECT NEW.company_id, NEW.customer_name, NEW.customer_email, NEW.customer_phone, 'chat'
         WHERE NOT EXISTS (SELECT 1 FROM hit)
        RETURNING *
    ), keys AS (
        INSERT INTO customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
        SELECT c.id, c.company_id, k.key_type, k.key_value, k.normalized_value
          FROM c CROSS JOIN LATERAL (VALUES ('email', c.customer_email, ne), ('phone', c.customer_phone, np),
                                            ('name', c.customer_name, nn)) AS k (key_type, key_value, normalized_value)
         WHERE k.normalized_value IS NOT NULL
    ), created AS (
        INSERT INTO customer_events (customer_id, company_id, event_type, event_data)
        SELECT c.id, c.company_id, 'created', jsonb_build_object('source', 'chat', 'session_id', NEW.session_id) FROM c
    ), audit AS (
        INSERT INTO customer_audit_log (table_name, record_id, company_id, operation, new_data, changed_by_user_id)
        SELECT 'customers', c.id, c.company_id, 'INSERT', to_jsonb(c),
               NULLIF(current_setting('app.current_user_id', true), '')::uuid
          FROM c
    ), metrics AS (
        INSERT INTO customer_metrics (customer_id, company_id, total_conversations, total_sessions, total_views,
                                      first_interaction_at, last_interaction_at, refreshed_at)
        SELECT c.id, c.company_id, 1, (NEW.session_id IS NOT NULL)::int, coalesce(NEW.view_count, 0), now(), now(), now()
          FROM c
    )
    SELECT coalesce((SELECT customer_id FROM hit), (SELECT id FROM c)) INTO NEW.customer_id;
    RETURN NEW;
END;
$$;

-- The next lifecycle stage (lifecycle update scenario).
CREATE FUNCTION bench.next_stage(stage text) RETURNS text LANGUAGE sql IMMUTABLE
    RETURN CASE stage WHEN 'prospect' THEN 'lead' WHEN 'lead' THEN 'customer'
                      WHEN 'customer' THEN 'churned' ELSE 'prospect' END;

-- The floor for customer UPDATEs: the update, the lifecycle event when the
-- stage changes, and one audit row per row (changed_fields as given).
-- `target` selects the ids; `assignments` is the SET list.
CREATE FUNCTION bench.floor_update_sql(target text, assignments text, changed_fields text[], lifecycle bool)
    RETURNS text LANGUAGE sql IMMUTABLE
RETURN format($q$
WITH target AS MATERIALIZED (
    SELECT c.* FROM customers c WHERE c.id IN (%s)
), upd AS (
    UPDATE customers c SET %s FROM target t WHERE c.id = t.id RETURNING c.*
), stage_events AS (
    INSERT INTO customer_events (customer_id, company_id, event_type, event_data)
    SELECT u.id, u.company_id, 'stage_changed', jsonb_build_object('from', t.lifecycle_stage, 'to', u.lifecycle_stage)
      FROM upd u JOIN target t ON t.id = u.id
     WHERE %L AND t.lifecycle_stage IS DISTINCT FROM u.lifecycle_stage
)
INSERT INTO customer_audit_log (table_name, record_id, company_id, operation, old_data, new_data,
                                changed_fields, changed_by_user_id)
SELECT 'customers', u.id, u.company_id, 'UPDATE', to_jsonb(t), to_jsonb(u), %L,
       NULLIF(current_setting('app.current_user_id', true), '')::uuid
  FROM upd u JOIN target t ON t.id = u.id
$q$, target, assignments, lifecycle, changed_fields);

-- Fires each trigger once (and rolls it back), so that a timed run measures
-- a warm session: plpgsql functions compiled, native library loaded, plans
-- cached. Runs in the caller's transaction; callers roll back.
CREATE FUNCTION bench.warmup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "VC Usage" (company_id, user_id, customer_name, customer_email, customer_phone, session_id)
    VALUES (bench.company_id(1), bench.user_id(1), 'Warm Up', 'warm.up@example.com', '+1 555 999 0000', 'warmup'),
           (bench.company_id(1), bench.user_id(1), 'Warm Up', 'warm.up@example.com', NULL, 'warmup');
    UPDATE customers SET lifecycle_stage = bench.next_stage(lifecycle_stage)
     WHERE id = (SELECT customer_id FROM customer_matching_keys
                  WHERE company_id = bench.company_id(1) AND key_type = 'email'
                    AND normalized_value = 'warm.up@example.com' LIMIT 1);
END;
$$;

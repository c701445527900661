-- Differential test harness (docs/differential.md), loaded into every
-- database the differential test compares, before the workload runs.
-- Schema difftest: the step clock, a deterministic customer id default, and
-- the canonical dump that factors out generated ids and wall-clock times.
SET client_min_messages = warning;
CREATE SCHEMA difftest;
GRANT USAGE ON SCHEMA difftest TO PUBLIC;

-- Each workload step is one transaction that first records its now() here;
-- a timestamp equal to step k's now() is dumped as T<k>.
CREATE TABLE difftest.clock (step int PRIMARY KEY, ts timestamptz NOT NULL UNIQUE);

-- customers.id defaults to gen_random_uuid(). Oldest-wins ties (same
-- created_at, i.e. customers created in one transaction) are broken by id, so
-- random ids would make the two databases disagree by chance. Both databases
-- get this creation-ordered, deterministic default instead.
CREATE SEQUENCE difftest.customer_seq;
CREATE FUNCTION difftest.next_customer_id() RETURNS uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
$$ SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(nextval('difftest.customer_seq')), 12, '0'))::uuid $$;
ALTER TABLE public.customers ALTER COLUMN id SET DEFAULT difftest.next_customer_id();

-- Delivery variant "procedures" (test/differential/delivery.py): each step's
-- statements (a text) executed in turn by one CALL, with a COMMIT after each,
-- as an application's batch procedure would.
CREATE PROCEDURE difftest.run_steps(p_steps text[]) LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY p_steps LOOP
        EXECUTE s;
        COMMIT;
    END LOOP;
END;
$$;

-- The workload finds chats by user_message ('m<n>', unique per chat).
CREATE INDEX difftest_vc_usage_message ON public."VC Usage" (user_message);

-- Customer labels: C<n> = the n-th customer by order of creation, taken from
-- the order of the audit log's INSERT rows (ids of one database are never
-- compared with the other's). A customer without an INSERT audit row gets a
-- label with its raw id, which can only mismatch.
CREATE TABLE difftest.cmap (id uuid PRIMARY KEY, label text NOT NULL);

CREATE FUNCTION difftest.build_map() RETURNS void LANGUAGE sql AS $$
    TRUNCATE difftest.cmap;
    INSERT INTO difftest.cmap
    SELECT record_id, 'C' || row_number() OVER (ORDER BY min(id))
      FROM public.customer_audit_log
     WHERE operation = 'INSERT' AND table_name = 'customers'
     GROUP BY record_id;
    INSERT INTO difftest.cmap
    SELECT c.id, 'C?' || c.id FROM public.customers c
     WHERE NOT EXISTS (SELECT 1 FROM difftest.cmap m WHERE m.id = c.id);
$$;

CREATE FUNCTION difftest.clabel(p uuid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p IS NULL THEN 'null'
                ELSE coalesce((SELECT label FROM difftest.cmap WHERE id = p), 'C?' || p) END
$$;

CREATE FUNCTION difftest.canon_ts(p timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p IS NULL THEN 'null'
                ELSE coalesce((SELECT 'T' || step FROM difftest.clock WHERE ts = p),
                              'L' || to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')) END
$$;

-- A row as jsonb, with customer ids replaced by labels and times by T<k>.
CREATE FUNCTION difftest.canon_row(j jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_object_agg(e.key,
             CASE WHEN e.value = 'null'::jsonb THEN e.value
                  WHEN e.key IN ('id', 'customer_id', 'merged_into_customer_id')
                       AND jsonb_typeof(e.value) = 'string' AND (e.value #>> '{}') ~ '^[0-9a-f-]{36}$'
                    THEN to_jsonb(difftest.clabel((e.value #>> '{}')::uuid))
                  WHEN e.key IN ('created_at', 'updated_at', 'deleted_at', 'lifecycle_stage_changed_at')
                    THEN to_jsonb(difftest.canon_ts((e.value #>> '{}')::timestamptz))
                  ELSE e.value END)
      FROM jsonb_each(j) e
$$;

-- The canonical final state: one text line per row, sorted bytewise.
CREATE FUNCTION difftest.dump() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM difftest.build_map();
    RETURN QUERY
    SELECT line FROM (
        SELECT 'customer ' || difftest.clabel(c.id) || ' ' || difftest.canon_row(to_jsonb(c) - 'id')::text AS line
          FROM public.customers c
        UNION ALL
        SELECT 'chat ' || coalesce(v.user_message, '?') || ' ' || difftest.canon_row(to_jsonb(v) - 'id')::text
          FROM public."VC Usage" v
        UNION ALL
        SELECT concat_ws(' ', 'key', difftest.clabel(k.customer_id), k.company_id, k.key_type,
                         coalesce(k.normalized_value, 'null'), coalesce(k.key_value, 'null'))
          FROM public.customer_matching_keys k
        UNION ALL
        SELECT concat_ws(' ', 'event', difftest.clabel(e.customer_id), e.company_id, e.event_type,
                         coalesce(e.event_data::text, 'null'), difftest.canon_ts(e.created_at))
          FROM public.customer_events e
        UNION ALL
        SELECT concat_ws(' ', 'audit', difftest.clabel(a.record_id),
                         '#' || row_number() OVER (PARTITION BY a.record_id ORDER BY a.id),
                         a.table_name, a.operation, a.company_id, coalesce(a.changed_fields::text, 'null'),
                         coalesce(a.changed_by_user_id::text, 'null'), difftest.canon_ts(a.changed_at),
                         'old=' || coalesce(difftest.canon_row(a.old_data)::text, 'null'),
                         'new=' || coalesce(difftest.canon_row(a.new_data)::text, 'null'))
          FROM public.customer_audit_log a
        UNION ALL
        -- refreshed_at: only whether it is set (when a row is refreshed is
        -- an implementation choice, the contract does not fix it)
        SELECT concat_ws(' ', 'metrics', difftest.clabel(m.customer_id), m.company_id, m.total_conversations,
                         m.total_sessions, m.total_views, difftest.canon_ts(m.first_interaction_at),
                         difftest.canon_ts(m.last_interaction_at),
                         CASE WHEN m.refreshed_at IS NULL THEN 'refreshed=null' ELSE 'refreshed=set' END)
          FROM public.customer_metrics m
    ) s
    ORDER BY line COLLATE "C";
END;
$$;

-- Invariants every database must satisfy on its own after the workload
-- (empty result = fine).
CREATE FUNCTION difftest.invariant_violations() RETURNS SETOF text LANGUAGE sql AS $$
    WITH expected AS (
        SELECT customer_id, count(*) AS n, count(DISTINCT session_id) AS s,
               coalesce(sum(view_count), 0) AS v, min(created_at) AS f, max(created_at) AS l
          FROM public."VC Usage" WHERE customer_id IS NOT NULL GROUP BY customer_id),
    actual AS (
        SELECT customer_id, total_conversations AS n, total_sessions AS s, total_views AS v,
               first_interaction_at AS f, last_interaction_at AS l FROM public.customer_metrics)
    SELECT 'metrics differ from a full recomputation for ' || difftest.clabel(customer_id)
      FROM ((SELECT * FROM expected EXCEPT SELECT * FROM actual)
            UNION ALL (SELECT * FROM actual EXCEPT SELECT * FROM expected)) d
    UNION ALL
    SELECT 'chat ' || v.user_message || ' linked to a customer of another company'
      FROM public."VC Usage" v JOIN public.customers c ON c.id = v.customer_id
     WHERE c.company_id <> v.company_id
    UNION ALL
    SELECT 'key of ' || difftest.clabel(k.customer_id) || ' in another company'
      FROM public.customer_matching_keys k JOIN public.customers c ON c.id = k.customer_id
     WHERE c.company_id <> k.company_id
$$;

-- The two tenants and their users (the workload's fixed ids).
INSERT INTO public.companies (id, name) VALUES
    ('aaaaaaaa-0000-4000-8000-00000000000a', 'Tenant A'),
    ('bbbbbbbb-0000-4000-8000-00000000000b', 'Tenant B');
INSERT INTO public.users (id, email, company_id) VALUES
    ('aaaaaaaa-0000-4000-8000-0000000000a1', 'agent@tenant-a.example', 'aaaaaaaa-0000-4000-8000-00000000000a'),
    ('bbbbbbbb-0000-4000-8000-0000000000b1', 'agent@tenant-b.example', 'bbbbbbbb-0000-4000-8000-00000000000b');

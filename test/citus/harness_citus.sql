-- Citus adaptations of the differential harness (test/differential/harness.sql),
-- loaded right after it into every database test/run.d/citus.sh compares:
-- the Citus coordinator's database, the single-node database and the plain
-- databases the final states are copied into for the canonical dump. The
-- same definitions on every side, so the comparison stays symmetrical.
--
-- 1. Customer ids. harness.sql makes them creation-ordered (oldest-wins ties
--    are broken by id). On Citus the rows are written on the node of the
--    tenant's shard, by the coordinator (the application's INSERT) or by a
--    trigger on the worker, so one sequence cannot order them. Here a BEFORE
--    INSERT trigger, which fires on the shard for every customer whatever
--    wrote it, takes the id from a sequence of the node that holds the
--    tenant: creation-ordered within a company (ties are only ever broken
--    within one), unique across companies (8 hex digits of the company id's
--    md5 lead). The sequence exists on every node (test/run.d/citus.sh
--    creates it on the workers).
-- 2. Times. Statements of a transaction run on the workers in the workers'
--    own transactions, whose now() is a little later than the coordinator's
--    (the step's clock row). A time at or after step k's now() and before
--    step k+1's is dumped as T<k> (harness.sql: only a time equal to it).
-- 3. Customer labels. Audit log ids come from a sequence per node, so the
--    n-th customer is counted per company: C<8 hex of its md5>.<n>, in the
--    order of their first audit row's (changed_at, id): changed_at, since a
--    tenant moved to another node continues with that node's sequence.
--    For the same reason a customer's audit rows are numbered (#n) in the
--    order of (changed_at, id): dump() below is harness.sql's with only
--    that changed.
SET client_min_messages = warning;

CREATE SEQUENCE IF NOT EXISTS difftest.citus_customer_seq;
GRANT USAGE ON SEQUENCE difftest.citus_customer_seq TO PUBLIC;

CREATE OR REPLACE FUNCTION difftest.citus_customer_id() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    NEW.id := (left(md5(NEW.company_id::text), 8) || '-0000-4000-8000-'
               || lpad(to_hex(nextval('difftest.citus_customer_seq')), 12, '0'))::uuid;
    RETURN NEW;
END;
$$;

ALTER TABLE public.customers ALTER COLUMN id SET DEFAULT gen_random_uuid();
CREATE TRIGGER difftest_citus_customer_id BEFORE INSERT ON public.customers
    FOR EACH ROW EXECUTE FUNCTION difftest.citus_customer_id();

CREATE OR REPLACE FUNCTION difftest.canon_ts(p timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p IS NULL THEN 'null'
                ELSE coalesce((SELECT 'T' || c.step FROM difftest.clock c
                                WHERE c.ts <= p ORDER BY c.ts DESC LIMIT 1),
                              'L' || to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')) END
$$;

CREATE OR REPLACE FUNCTION difftest.build_map() RETURNS void LANGUAGE sql AS $$
    TRUNCATE difftest.cmap;
    INSERT INTO difftest.cmap
    SELECT record_id, 'C' || left(md5(company_id::text), 8) || '.'
                      || row_number() OVER (PARTITION BY company_id ORDER BY min(changed_at), min(id))
      FROM public.customer_audit_log
     WHERE operation = 'INSERT' AND table_name = 'customers'
     GROUP BY record_id, company_id;
    INSERT INTO difftest.cmap
    SELECT c.id, 'C?' || c.id FROM public.customers c
     WHERE NOT EXISTS (SELECT 1 FROM difftest.cmap m WHERE m.id = c.id);
$$;

CREATE OR REPLACE FUNCTION difftest.dump() RETURNS SETOF text LANGUAGE plpgsql AS $$
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
                         '#' || row_number() OVER (PARTITION BY a.record_id ORDER BY a.changed_at, a.id),
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

-- Maintenance: rebuild the matching keys from the customers' current values.
-- Keys are stored; they depend on the normalizers (ICU, libphonenumber data)
-- and on the GUCs crm_native.default_region / email_provider_rules. After an
-- upgrade of either library, a change of either GUC, or when switching from
-- the plpgsql triggers (whose keys were normalized differently), rebuild them.
-- The native keys trigger rewrites only keys whose raw value changed, so a
-- no-op UPDATE of customers would not do it. Returns the number of keys written.
-- Customer writes wait while it runs (chats that create or fill a customer
-- too): run it in READ COMMITTED, where its statements read after its lock.
-- A customer's matching keys as the native keys trigger writes them: one
-- row per non-empty normalized name, email and phone. Written with unnest
-- rather than VALUES so that Citus can push it down to the shards.
-- The key the keys trigger writes for a value with the current settings, or
-- NULL when it writes none (empty, or a value it cannot normalize, such as
-- a key a LATIN1 database cannot store): one such customer must not fail a
-- rebuild, health() or a search. Out of memory still raises.
CREATE FUNCTION crm_native._matching_key(key_type text, value text) RETURNS text
    AS 'MODULE_PATHNAME', 'crm_matching_key' LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- Whether customer_sync would match or create a customer for a chat with
-- this contact data: one value gives a key, and no key the chat is matched
-- by fails to normalize (such a chat is stored unlinked with a WARNING).
-- health() counts the unlinked chats the sync would link with it.
CREATE FUNCTION crm_native._sync_links_contact(email text, phone text, name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'crm_sync_links_contact' LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION crm_native._customer_keys(name text, email text, phone text)
RETURNS TABLE (key_type text, key_value text, normalized_value text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.key_type, k.key_value, k.normalized_value
      FROM unnest(ARRAY['name', 'email', 'phone'], ARRAY[name, email, phone],
                  ARRAY[crm_native._matching_key('name', name), crm_native._matching_key('email', email),
                        crm_native._matching_key('phone', phone)]) AS k (key_type, key_value, normalized_value)
     WHERE k.normalized_value IS NOT NULL
$$;

-- The matching keys every customer should hold: its own (the keys of its
-- current name, email and phone, as the keys trigger writes them), and, on
-- a survivor of merge_customers(), the keys it inherited. merge_customers()
-- moves the source's keys that the target lacks to the target, because the
-- sync never matches a soft-deleted holder, and writes a customer_merge_log
-- row with the source as it was (merge_reason 'crm_native.merge_customers').
-- So the merges are replayed from that log, not guessed from the customers:
-- a customer the application merged itself (merged_into_customer_id and
-- deleted_at set by its own UPDATE) keeps its own keys, as the keys trigger
-- left them, and a source purged since still hands its keys down (both got
-- this wrong: found by an independent tester).
--
-- A logged merge stands while its source is still merged away: purged
-- since, or soft-deleted with merged_into_customer_id naming the logged
-- target or a customer whose keys end where that target's do (the
-- application may repoint the source along the chain, to flatten it or to
-- purge a customer in between). Per company and source, only its latest logged
-- merge. A source unmerged since holds its own keys, and a later merge
-- into it must not follow its old merge on (a rebuild moved a third
-- customer's keys to the old target; found by an independent tester); so
-- does a source the application unmerged and then merged elsewhere itself
-- (the old log row stood again; found by an independent review). Per
-- company: a log row a tenant wrote for its own company never stands for
-- another company's customer (a forged row made the owner's rebuild strip
-- another tenant's keys; found by an independent tester).
--
-- _merge_candidates() lists the latest logged merge per company and source
-- whose source is purged or merged away; _merge_outcomes() decides which
-- stand and where their keys are now.
CREATE FUNCTION crm_native._merge_candidates(target_schema text)
RETURNS TABLE (id uuid, merged_at timestamptz, company_id uuid, source uuid, target uuid, data jsonb,
               purged boolean, merged_into uuid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass(format('%I.customer_merge_log', target_schema)) IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(  -- (the columns may be domains)
        'SELECT m.id, m.merged_at, m.company_id, m.source, m.target, m.data, c.id IS NULL, c.merged_into_customer_id::uuid
           FROM (SELECT DISTINCT ON (l.company_id, l.source_customer_id)
                        l.id::uuid AS id, l.merged_at::timestamptz AS merged_at, l.company_id::uuid AS company_id,
                        l.source_customer_id::uuid AS source, l.target_customer_id::uuid AS target,
                        l.merged_data->''source'' AS data
                   FROM %1$I.customer_merge_log l
                  WHERE l.merge_reason = ''crm_native.merge_customers''
                    AND l.company_id IS NOT NULL AND l.target_customer_id IS NOT NULL
                    AND l.merged_data->''source''->>''id'' = l.source_customer_id::text
                  ORDER BY l.company_id, l.source_customer_id, l.merged_at DESC, l.id DESC) m
           LEFT JOIN %1$I.customers c ON c.id = m.source AND c.company_id = m.company_id
          WHERE c.id IS NULL OR (c.deleted_at IS NOT NULL AND c.merged_into_customer_id IS NOT NULL)',
        target_schema);
END
$$;

-- The merges that stand, and where each one's keys are now: a merge's
-- keys go where the later standing merges moved them on, from its target
-- to the target of the merge that merged that one away, and so on (same
-- company, however long the chain), to the last (holder); there they are
-- expected unless that customer's own values give them. A hop is a merge
-- no earlier than the one that brought the keys (merge_customers() logs
-- its clock time; rows of older versions share their transaction's time,
-- hence "no earlier"). contributor: the merge's ordinal in merge order (of
-- two sources that hand down one key, the first merged gave it:
-- merge_customers() drops what the target holds).
--
-- Linear in the merges: taken latest first, a merge's keys end where those
-- of the later merge that took its target away end (already known), so
-- each chain is walked once (a walk per merge took minutes for chains of
-- a few thousand merges, which a tenant's role can write into its own
-- company's log; found by an independent review). Merges of one
-- transaction of an older version tie on their time; between those the
-- walk goes step by step, at most 64 steps.
CREATE FUNCTION crm_native._merge_outcomes(target_schema text)
RETURNS TABLE (contributor bigint, company_id uuid, source uuid, holder uuid, data jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    candidate jsonb;  -- company/source -> the candidate's target, time and ordinal (latest first)
    merges bigint;
    arrived_at uuid[];  -- by ordinal: where keys that reach that merge's source end up
    merge record;
    hop jsonb;
    keys_at timestamptz;
    steps int;
    i int;
    start uuid;
    ends uuid[];
BEGIN
    SELECT coalesce(jsonb_object_agg(m.company_id::text || '/' || m.source::text,
                                     jsonb_build_object('target', m.target, 'at', m.merged_at, 'i', m.i)), '{}'),
           count(*)
      INTO candidate, merges
      FROM (SELECT c.*, row_number() OVER (ORDER BY c.merged_at DESC, c.id DESC) AS i
              FROM crm_native._merge_candidates(target_schema) c) m;
    arrived_at := array_fill(NULL::uuid, ARRAY[greatest(merges, 1)::int]);
    FOR merge IN SELECT c.* FROM crm_native._merge_candidates(target_schema) c ORDER BY c.merged_at DESC, c.id DESC LOOP
        i := (candidate -> (merge.company_id::text || '/' || merge.source::text) ->> 'i')::int;
        -- where the keys that reach each customer end up: the merge's
        -- target (so its keys) and the source's current survivor
        ends := '{}';
        FOREACH start IN ARRAY ARRAY[merge.target, merge.merged_into] LOOP
            holder := start;
            keys_at := merge.merged_at;
            steps := 0;
            LOOP
                hop := candidate -> (merge.company_id::text || '/' || holder::text);
                EXIT WHEN hop IS NULL OR (hop->>'at')::timestamptz < keys_at;
                IF arrived_at[(hop->>'i')::int] IS NOT NULL THEN  -- a later merge: decided
                    holder := arrived_at[(hop->>'i')::int];
                    EXIT;
                END IF;
                steps := steps + 1;  -- a tie, not decided yet
                EXIT WHEN steps > 64;
                holder := (hop->>'target')::uuid;
                keys_at := (hop->>'at')::timestamptz;
            END LOOP;
            ends := ends || holder;
        END LOOP;
        -- It stands when the source is purged, or merged (by the log, or
        -- repointed since) into a customer whose keys end where the
        -- merge's did; merged elsewhere by the application, its keys stay.
        IF merge.purged OR ends[2] = ends[1] THEN
            arrived_at[i] := ends[1];
            contributor := merges + 1 - i;
            company_id := merge.company_id;
            source := merge.source;
            holder := ends[1];
            data := merge.data;
            RETURN NEXT;
        ELSE
            arrived_at[i] := merge.source;
        END IF;
    END LOOP;
END
$$;

-- The keys the standing merges (outcomes: _merge_outcomes() as a jsonb
-- array, computed once by the caller) handed down, on their holders
-- (owners: only these holders; NULL: all). rebuild_matching_keys() writes
-- them, health() compares with them. A holder purged since took them with it.
CREATE FUNCTION crm_native._merged_keys(target_schema text, outcomes jsonb, owners uuid[] DEFAULT NULL)
RETURNS TABLE (customer_id uuid, company_id uuid, key_type text, key_value text, normalized_value text,
               contributor bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    merge record;
    last record;
    last_rows bigint;
BEGIN
    FOR merge IN SELECT o.*
                   FROM jsonb_to_recordset(outcomes)
                        AS o(contributor bigint, company_id uuid, source uuid, holder uuid, data jsonb)
                  WHERE owners IS NULL OR o.holder = ANY (owners) LOOP
        EXECUTE format('/* crm_native pins: c=id */ SELECT c.customer_name, c.customer_email, c.customer_phone
                          FROM %I.customers c WHERE c.id = $1 AND c.company_id = $2', target_schema)
           INTO last USING merge.holder, merge.company_id;
        GET DIAGNOSTICS last_rows = ROW_COUNT;  -- EXECUTE leaves FOUND as it was
        CONTINUE WHEN last_rows = 0;  -- purged: the keys went with it
        RETURN QUERY
            SELECT merge.holder, merge.company_id, k.key_type, k.key_value, k.normalized_value, merge.contributor
              FROM crm_native._customer_keys(merge.data->>'customer_name', merge.data->>'customer_email',
                                             merge.data->>'customer_phone') k
             WHERE NOT EXISTS (SELECT FROM crm_native._customer_keys(last.customer_name, last.customer_email,
                                                                     last.customer_phone) own
                                WHERE own.key_type = k.key_type AND own.normalized_value = k.normalized_value);
    END LOOP;
END
$$;

-- The tables _expected_keys() reads, when row-level security applies to the
-- caller on one of them (NULL: none). Under the reference policies a
-- tenant's role sees no soft-deleted customer, so merge chains break and
-- the keys handed down along them seem to belong nowhere: a rebuild as that
-- role deleted them (found by an independent review).
CREATE FUNCTION crm_native._keys_hidden_by_row_security(target_schema text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(t, ', ' ORDER BY t)
      FROM unnest(ARRAY['customers', 'customer_matching_keys', 'customer_merge_log']) t
     WHERE to_regclass(format('%I.%I', target_schema, t)) IS NOT NULL
       AND row_security_active(format('%I.%I', target_schema, t))
$$;

CREATE FUNCTION crm_native._expected_keys(target_schema text, owners uuid[] DEFAULT NULL)
RETURNS TABLE (customer_id uuid, company_id uuid, key_type text, key_value text, normalized_value text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    outcomes jsonb;
    merged_away text[];
BEGIN
    -- the standing merges, replayed once; their sources' keys moved (read
    -- first, not joined: on Citus the customers join the log only on the
    -- distribution column)
    SELECT coalesce(jsonb_agg(to_jsonb(m)), '[]'), coalesce(array_agg(m.company_id::text || '/' || m.source::text), '{}')
      INTO outcomes, merged_away
      FROM crm_native._merge_outcomes(target_schema) m;
    -- every customer's own keys, but those of such a source (given owners:
    -- theirs, read by the primary key; index pins, docs/tenancy.md)
    RETURN QUERY EXECUTE format($q$%2$s
        SELECT c.id::uuid, c.company_id::uuid, k.key_type, k.key_value, k.normalized_value  -- the columns may be domains
          FROM %1$I.customers c
         CROSS JOIN LATERAL crm_native._customer_keys(c.customer_name, c.customer_email, c.customer_phone) k
         WHERE ($1 IS NULL OR c.id = ANY ($1))
           AND NOT (c.company_id::text || '/' || c.id::text) = ANY ($2)$q$,
        target_schema, CASE WHEN owners IS NOT NULL THEN '/* crm_native pins: c=id */' ELSE '' END)
        USING owners, merged_away;
    -- and the inherited ones, each key once
    RETURN QUERY
        SELECT DISTINCT ON (m.customer_id, m.key_type, m.normalized_value)
               m.customer_id, m.company_id, m.key_type, m.key_value, m.normalized_value
          FROM crm_native._merged_keys(target_schema, outcomes, owners) m
         ORDER BY m.customer_id, m.key_type, m.normalized_value, m.contributor;
END
$$;

CREATE FUNCTION crm_native.rebuild_matching_keys(target_schema text DEFAULT 'public',
                                                 customer uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
    hidden text;
BEGIN
    PERFORM crm_native._require_schema('crm_native.rebuild_matching_keys', target_schema);
    hidden := crm_native._keys_hidden_by_row_security(target_schema);
    IF hidden IS NOT NULL THEN
        RAISE EXCEPTION 'crm_native.rebuild_matching_keys: row-level security applies to this role on %',
                        hidden
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The rebuild must see every customer, soft-deleted and merged ones too, or it '
                           'would delete keys it cannot place.',
                  HINT = 'Run it as the tables'' owner, or a role with BYPASSRLS.';
    END IF;
    -- No customer may change while its keys are rewritten: the keys trigger
    -- of a concurrent change would delete the old key before the rewrite
    -- inserts it again from the row it read (a stale key for good), and a
    -- customer created in between would get its keys twice. SHARE ROW
    -- EXCLUSIVE waits for the writers under way and holds off new ones
    -- (chats that only link to a customer go on), and another rebuild, which
    -- would otherwise write the keys a second time. One customer too: the
    -- lock is held only for that customer's rewrite, and a table lock works
    -- the same on Citus (a row lock by id alone spans the shards).
    EXECUTE format('LOCK TABLE %I.customers IN SHARE ROW EXCLUSIVE MODE', target_schema);
    -- One customer: its keys read by their own index (customer_id), whatever
    -- the statistics (index pins, docs/tenancy.md; the library that reads
    -- them loaded first). All customers: the plan as before.
    PERFORM crm_native.version_info();
    EXECUTE format('%sDELETE FROM %I.customer_matching_keys k WHERE $1 IS NULL OR k.customer_id = $1',
                   CASE WHEN customer IS NOT NULL THEN '/* crm_native pins: no_seqscan k=customer_id */ ' ELSE '' END,
                   target_schema) USING customer;
    EXECUTE format($q$
        INSERT INTO %1$I.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
        SELECT e.customer_id, e.company_id, e.key_type, e.key_value, e.normalized_value
          FROM crm_native._expected_keys(%2$L, CASE WHEN $1 IS NULL THEN NULL ELSE ARRAY[$1] END) e
         ORDER BY e.customer_id, e.key_type$q$, target_schema, target_schema) USING customer;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

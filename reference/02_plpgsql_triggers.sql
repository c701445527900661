-- Reference application migration, part 2: the six plpgsql triggers the CRM
-- runs today (docs/contract.md, "The triggers"). They are the "before" that
-- crm_native.install() replaces, the baseline of every benchmark and the
-- oracle of the differential test (test/run.d/differential.sh), so they
-- implement section 2 exactly; docs/reference.md explains every decision
-- taken where the contract is silent. Summary of those decisions:
--
--  * Normalization is the plain plpgsql one (native uses libphonenumber/ICU):
--      email  lower(trim)                                   ' A@B.com ' -> 'a@b.com'
--      phone  digits only                        '+1 (555) 123-4567' -> '15551234567'
--      name   lower, whitespace runs -> one space, trimmed  ' Ann  Lee' -> 'ann lee'
--    An empty result means "no key" (NULL).
--  * Matching: within NEW.company_id only, among customers with
--    deleted_at IS NULL, through customer_matching_keys: email, else phone,
--    else (only when the chat row has neither email nor phone) name. Oldest
--    wins: ORDER BY created_at, id (a NULL created_at sorts last).
--  * Merge chain: the matched customer's merged_into_customer_id chain is
--    followed to its end. The end must be a live customer (deleted_at IS NULL)
--    of the same company; a candidate whose chain ends at a soft-deleted
--    customer, leaves the company, or loops is skipped, and the next-oldest
--    holder of the key is tried; when no holder resolves, the key gives no
--    match and matching goes on with the next key. Intermediate customers of
--    a chain may be soft-deleted (merged-away rows usually are).
--  * "Missing" contact info on a customer means NULL or blank (only
--    whitespace); a chat value fills it only when it normalizes to a key.
--    Filled values are stored as the chat gave them (raw), like a new
--    customer's. A chat that matches a customer and fills something sets
--    updated_at = now() in the same UPDATE and writes 'contact_info_added';
--    a chat that brings nothing new does not touch the customer at all (no
--    UPDATE, no audit row: docs/contract.md, sync step 4). The UPDATE of an
--    already linked chat row does the same.
--  * UPDATE of a linked chat row fills missing contact info on its customer
--    (NEW.customer_id itself, no merge chain) if that customer is live; it
--    never relinks.
--  * Known race, kept on purpose (this is the "before"): two transactions that
--    sync the same new email at the same time both miss and both insert a
--    customer. The native trigger serializes them (docs/contract.md, "Concurrency").
--  * All functions are SECURITY INVOKER (the default): under the application
--    role crm_app they see and write only the current tenant's rows
--    (03_rls.sql). Objects are schema-qualified (public.).
SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- Normalization (plpgsql flavour). IMMUTABLE SQL functions: inlined.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.crm_normalize_email(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NULLIF(lower(btrim(raw, E' \t\r\n\f\x0B')), '');

CREATE FUNCTION public.crm_normalize_phone(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NULLIF(regexp_replace(raw, '[^0-9]', '', 'g'), '');

CREATE FUNCTION public.crm_normalize_name(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NULLIF(btrim(regexp_replace(lower(raw), '\s+', ' ', 'g'), ' '), '');

-- ---------------------------------------------------------------------------
-- Merge chain: the surviving customer of p_customer_id, or NULL when the
-- chain ends at a soft-deleted customer, leaves p_company_id, reaches a row
-- this role cannot see, or loops.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.resolve_merged_customer(p_customer_id uuid, p_company_id uuid)
    RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_current uuid := p_customer_id;
    v_seen    uuid[] := '{}';
    v_next    uuid;
    v_deleted timestamptz;
    v_company uuid;
BEGIN
    LOOP
        SELECT c.merged_into_customer_id, c.deleted_at, c.company_id
          INTO v_next, v_deleted, v_company
          FROM public.customers c
         WHERE c.id = v_current;
        IF NOT FOUND OR v_company IS DISTINCT FROM p_company_id THEN
            RETURN NULL;
        END IF;
        IF v_next IS NULL THEN
            -- the survivor: it must be live
            RETURN CASE WHEN v_deleted IS NULL THEN v_current END;
        END IF;
        v_seen := v_seen || v_current;
        IF v_next = ANY (v_seen) THEN
            RETURN NULL;  -- merge cycle: no survivor
        END IF;
        v_current := v_next;
    END LOOP;
END;
$$;

-- One matching key lookup: the oldest live customer of the company holding
-- the key whose merge chain resolves to a live survivor; that survivor, or
-- NULL when there is none.
CREATE FUNCTION public.find_customer_by_key(p_company_id uuid, p_key_type text, p_normalized text)
    RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_candidate uuid;
    v_survivor  uuid;
BEGIN
    IF p_normalized IS NULL THEN
        RETURN NULL;
    END IF;
    FOR v_candidate IN
        SELECT c.id
          FROM public.customer_matching_keys k
          JOIN public.customers c ON c.id = k.customer_id
         WHERE k.company_id = p_company_id
           AND k.key_type = p_key_type
           AND k.normalized_value = p_normalized
           AND c.company_id = p_company_id
           AND c.deleted_at IS NULL
         ORDER BY c.created_at, c.id
    LOOP
        v_survivor := public.resolve_merged_customer(v_candidate, p_company_id);
        IF v_survivor IS NOT NULL THEN
            RETURN v_survivor;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

-- Fills the customer's missing (NULL or blank) email/phone from a chat row;
-- never overwrites. Writes 'contact_info_added' when something was filled.
CREATE FUNCTION public.fill_customer_contact_info(p_customer_id uuid, p_email text, p_phone text)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_cur_email text;
    v_cur_phone text;
    v_company   uuid;
    v_fields    text[] := '{}';
BEGIN
    IF public.crm_normalize_email(p_email) IS NULL AND public.crm_normalize_phone(p_phone) IS NULL THEN
        RETURN;
    END IF;
    SELECT c.customer_email, c.customer_phone, c.company_id
      INTO v_cur_email, v_cur_phone, v_company
      FROM public.customers c
     WHERE c.id = p_customer_id AND c.deleted_at IS NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF public.crm_normalize_email(p_email) IS NOT NULL AND NULLIF(btrim(v_cur_email, E' \t\r\n\f\x0B'), '') IS NULL THEN
        v_fields := v_fields || 'customer_email'::text;
    END IF;
    IF public.crm_normalize_phone(p_phone) IS NOT NULL AND NULLIF(btrim(v_cur_phone, E' \t\r\n\f\x0B'), '') IS NULL THEN
        v_fields := v_fields || 'customer_phone'::text;
    END IF;
    IF cardinality(v_fields) = 0 THEN
        RETURN;
    END IF;
    UPDATE public.customers
       SET customer_email = CASE WHEN 'customer_email' = ANY (v_fields) THEN p_email ELSE customer_email END,
           customer_phone = CASE WHEN 'customer_phone' = ANY (v_fields) THEN p_phone ELSE customer_phone END,
           updated_at = now()
     WHERE id = p_customer_id;
    INSERT INTO public.customer_events (customer_id, company_id, event_type, event_data)
    VALUES (p_customer_id, v_company, 'contact_info_added', jsonb_build_object('fields', to_jsonb(v_fields)));
END;
$$;

-- ---------------------------------------------------------------------------
-- 1+2. Customer sync from chat conversations ("VC Usage").
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.sync_customer_from_vc_usage() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    v_email       text := public.crm_normalize_email(NEW.customer_email);
    v_phone       text := public.crm_normalize_phone(NEW.customer_phone);
    v_name        text := public.crm_normalize_name(NEW.customer_name);
    v_customer_id uuid;
BEGIN
    IF NEW.customer_id IS NOT NULL THEN
        -- INSERT: already linked, left as it is. UPDATE of a linked row:
        -- fill missing contact info on its customer, never relink.
        IF TG_OP = 'UPDATE' THEN
            PERFORM public.fill_customer_contact_info(NEW.customer_id, NEW.customer_email, NEW.customer_phone);
        END IF;
        RETURN NEW;
    END IF;

    IF v_email IS NULL AND v_phone IS NULL AND v_name IS NULL THEN
        RETURN NEW;  -- nothing to match on: stays unlinked
    END IF;

    v_customer_id := public.find_customer_by_key(NEW.company_id, 'email', v_email);
    IF v_customer_id IS NULL THEN
        v_customer_id := public.find_customer_by_key(NEW.company_id, 'phone', v_phone);
    END IF;
    IF v_customer_id IS NULL AND v_email IS NULL AND v_phone IS NULL THEN
        v_customer_id := public.find_customer_by_key(NEW.company_id, 'name', v_name);
    END IF;

    IF v_customer_id IS NOT NULL THEN
        PERFORM public.fill_customer_contact_info(v_customer_id, NEW.customer_email, NEW.customer_phone);
    ELSE
        -- Known race: a concurrent transaction may be inserting the same
        -- customer right now; nothing here stops it (see header).
        INSERT INTO public.customers (company_id, customer_name, customer_email, customer_phone,
                                      source, created_by_user_id)
        VALUES (NEW.company_id, NEW.customer_name, NEW.customer_email, NEW.customer_phone,
                'chat', NULL)
        RETURNING id INTO v_customer_id;
        INSERT INTO public.customer_events (customer_id, company_id, event_type, event_data)
        VALUES (v_customer_id, NEW.company_id, 'created',
                jsonb_build_object('source', 'chat', 'session_id', NEW.session_id));
    END IF;

    NEW.customer_id := v_customer_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_vc_usage_customer_sync_insert
    BEFORE INSERT ON public."VC Usage"
    FOR EACH ROW EXECUTE FUNCTION public.sync_customer_from_vc_usage();

CREATE TRIGGER trg_vc_usage_customer_sync_update
    BEFORE UPDATE OF customer_name, customer_email, customer_phone ON public."VC Usage"
    FOR EACH ROW EXECUTE FUNCTION public.sync_customer_from_vc_usage();

-- ---------------------------------------------------------------------------
-- 3. Matching keys: always equal to the customer's current name/email/phone
--    (the plpgsql way: delete them all, insert them again).
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.sync_customer_matching_keys() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM public.customer_matching_keys WHERE customer_id = NEW.id;
    INSERT INTO public.customer_matching_keys (customer_id, company_id, key_type, key_value, normalized_value)
    SELECT NEW.id, NEW.company_id, k.key_type, k.key_value, k.normalized_value
      FROM (VALUES ('email', NEW.customer_email, public.crm_normalize_email(NEW.customer_email)),
                   ('phone', NEW.customer_phone, public.crm_normalize_phone(NEW.customer_phone)),
                   ('name',  NEW.customer_name,  public.crm_normalize_name(NEW.customer_name)))
           AS k (key_type, key_value, normalized_value)
     WHERE k.normalized_value IS NOT NULL;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_customers_matching_keys_sync
    AFTER INSERT OR UPDATE ON public.customers
    FOR EACH ROW EXECUTE FUNCTION public.sync_customer_matching_keys();

-- ---------------------------------------------------------------------------
-- 4. Metrics: per changed row, recompute the whole aggregate of the old and
--    the new customer (delete + insert). A customer without conversations
--    has no customer_metrics row.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.refresh_customer_metrics(p_customer_id uuid) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM public.customer_metrics WHERE customer_id = p_customer_id;
    INSERT INTO public.customer_metrics (customer_id, company_id, total_conversations, total_sessions,
                                         total_views, first_interaction_at, last_interaction_at, refreshed_at)
    SELECT p_customer_id,
           (array_agg(v.company_id))[1],   -- a customer's chats share its company
           count(*),
           count(DISTINCT v.session_id),
           coalesce(sum(v.view_count), 0),
           min(v.created_at),
           max(v.created_at),
           now()
      FROM public."VC Usage" v
     WHERE v.customer_id = p_customer_id
    HAVING count(*) > 0;
END;
$$;

CREATE FUNCTION public.trigger_refresh_customer_metrics() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.customer_id IS NOT NULL THEN
        PERFORM public.refresh_customer_metrics(OLD.customer_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.customer_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.customer_id IS DISTINCT FROM OLD.customer_id) THEN
        PERFORM public.refresh_customer_metrics(NEW.customer_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_vc_usage_metrics_refresh
    AFTER INSERT OR UPDATE OR DELETE ON public."VC Usage"
    FOR EACH ROW EXECUTE FUNCTION public.trigger_refresh_customer_metrics();

-- ---------------------------------------------------------------------------
-- 5. Audit log: one row per changed customer row.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.log_customer_changes() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    v_old     jsonb;
    v_new     jsonb;
    v_changed text[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old := to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_new := to_jsonb(NEW);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- byte order (COLLATE "C"), so the list does not depend on the locale
        SELECT array_agg(n.key ORDER BY n.key COLLATE "C")
          INTO v_changed
          FROM jsonb_each(v_new) AS n
         WHERE n.value IS DISTINCT FROM v_old -> n.key;
        IF v_changed IS NULL THEN
            RETURN NULL;  -- no column changed: no audit row
        END IF;
    END IF;
    INSERT INTO public.customer_audit_log (table_name, record_id, company_id, operation,
                                           old_data, new_data, changed_fields, changed_by_user_id)
    VALUES ('customers',
            CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
            CASE WHEN TG_OP = 'DELETE' THEN OLD.company_id ELSE NEW.company_id END,
            TG_OP, v_old, v_new, v_changed,
            NULLIF(current_setting('app.current_user_id', true), '')::uuid);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_customers_audit_log
    AFTER INSERT OR UPDATE OR DELETE ON public.customers
    FOR EACH ROW EXECUTE FUNCTION public.log_customer_changes();

-- ---------------------------------------------------------------------------
-- 6. Lifecycle tracking.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.track_lifecycle_changes() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.lifecycle_stage_changed_at := now();
    INSERT INTO public.customer_events (customer_id, company_id, event_type, event_data)
    VALUES (NEW.id, NEW.company_id, 'stage_changed',
            jsonb_build_object('from', OLD.lifecycle_stage, 'to', NEW.lifecycle_stage));
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_customers_lifecycle_tracking
    BEFORE UPDATE ON public.customers
    FOR EACH ROW
    WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage)
    EXECUTE FUNCTION public.track_lifecycle_changes();

-- Reference application migration, part 4 (Citus only): turns a database
-- built from reference/01_schema.sql (and, when loaded, 02_plpgsql_triggers.sql
-- and 03_rls.sql) into its distributed form on Citus 13, one tenant per
-- shard key (docs/citus.md):
--
--   * companies and users become reference tables (a copy on every node);
--   * every other CRM table is distributed by company_id, all co-located
--     with customers, so one tenant's rows of every table live in shards on
--     the same node and the triggers can run there, shard-locally;
--   * every primary key and every foreign key between distributed tables
--     gets company_id, as SECOND column (id first, so the shard-local lookups
--     by id stay on the index's leading column): customers (id, company_id),
--     customer_metrics (customer_id, company_id), and
--     (customer_id, company_id) REFERENCES customers (id, company_id);
--   * "VC Usage".customer_id's ON DELETE SET NULL is refused by Citus on a
--     foreign key that contains the distribution column (also with the PG15
--     column list form ON DELETE SET NULL (customer_id)), so the foreign key
--     is NO ACTION and a BEFORE DELETE trigger on customers unlinks the
--     customer's chats in the co-located shard first (the same UPDATE the
--     foreign key action ran, with the table owner's rights like it);
--   * the seed's 28 indexes are kept; the two unique ones (customers_pkey,
--     idx_customer_metrics_id) get company_id as their second column;
--   * the application role crm_app (03_rls.sql), when it exists, gets LOGIN:
--     Citus connects to the workers as the role that runs the query;
--   * a soft delete by a role under row-level security keeps working: Citus
--     evaluates now() in "SET deleted_at = now()" on the coordinator, whose
--     transaction started a little before the worker's, so the new row failed
--     03_rls.sql's "deleted_at >= now()" on the worker ("new row violates
--     row-level security policy"); a BEFORE UPDATE trigger moves such a
--     deleted_at up to the worker's now() (section 6).
--
-- It lives in reference/citus/, not reference/, because the test and
-- benchmark commands load reference/*.sql into plain PostgreSQL.
--
-- Preconditions: CREATE EXTENSION citus in this database on the coordinator
-- and on the workers, and the workers added (citus_add_node). Run it as a
-- superuser, on the coordinator, before CREATE EXTENSION crm_native and
-- crm_native.install() (or after crm_native.uninstall()). Existing rows are
-- moved into the shards (create_distributed_table copies them). Rows of
-- customer_events, customer_audit_log, customer_metrics and customer_merge_log
-- with a NULL company_id cannot be distributed: the migration stops on them.
-- Settings the application needs on Citus (docs/citus.md):
--   citus.enable_unsafe_triggers = on     (the triggers run on the shards)
--   citus.propagate_set_commands = 'local' and SET LOCAL app.current_company_id
--     (row-level security is evaluated on the workers)
--
-- Load with:  psql -v ON_ERROR_STOP=1 -f reference/citus/04_distribute.sql
SET client_min_messages = warning;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'reference/citus/04_distribute.sql needs the citus extension (CREATE EXTENSION citus)';
    END IF;
    IF current_setting('citus.enable_unsafe_triggers')::boolean IS NOT TRUE THEN
        RAISE EXCEPTION 'set citus.enable_unsafe_triggers = on (postgresql.conf or ALTER SYSTEM) on every node first';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'crm_native')
       AND EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                    JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'crm_native' AND NOT t.tgisinternal) THEN
        RAISE EXCEPTION 'crm_native.install() was run: SELECT crm_native.uninstall() first, install() again afterwards';
    END IF;
END;
$$;

-- Roles are propagated by Citus; the application role must be able to log in.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_app' AND NOT rolcanlogin) THEN
        ALTER ROLE crm_app LOGIN;
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------
-- 1. Drop every foreign key among the CRM tables and the keys to be widened
--    (Citus distributes a table only with foreign keys it accepts, and the
--    reference tables must exist before the keys that point at them).
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.conrelid::regclass AS tbl, c.conname
          FROM pg_constraint c
         WHERE c.contype = 'f'
           AND c.conrelid IN ('public.companies'::regclass, 'public.users'::regclass,
                              'public.customers'::regclass, 'public."VC Usage"'::regclass,
                              'public.customer_matching_keys'::regclass, 'public.customer_events'::regclass,
                              'public.customer_audit_log'::regclass, 'public.customer_metrics'::regclass,
                              'public.customer_conversation_summaries'::regclass,
                              'public.customer_merge_log'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END;
$$;

ALTER TABLE public.customers                       DROP CONSTRAINT customers_pkey;
ALTER TABLE public."VC Usage"                      DROP CONSTRAINT "VC Usage_pkey";
ALTER TABLE public.customer_matching_keys          DROP CONSTRAINT customer_matching_keys_pkey;
ALTER TABLE public.customer_events                 DROP CONSTRAINT customer_events_pkey;
ALTER TABLE public.customer_audit_log              DROP CONSTRAINT customer_audit_log_pkey;
ALTER TABLE public.customer_metrics                DROP CONSTRAINT idx_customer_metrics_id;
ALTER TABLE public.customer_conversation_summaries DROP CONSTRAINT customer_conversation_summaries_pkey;
ALTER TABLE public.customer_merge_log              DROP CONSTRAINT customer_merge_log_pkey;

-- ---------------------------------------------------------------------------
-- 2. Keys with company_id second (this also makes company_id NOT NULL where
--    it was nullable: customer_events, customer_audit_log, customer_metrics,
--    customer_merge_log).
-- ---------------------------------------------------------------------------
ALTER TABLE public.customers ADD CONSTRAINT customers_pkey PRIMARY KEY (id, company_id);
ALTER TABLE public."VC Usage" ADD CONSTRAINT "VC Usage_pkey" PRIMARY KEY (id, company_id);
ALTER TABLE public.customer_matching_keys ADD CONSTRAINT customer_matching_keys_pkey PRIMARY KEY (id, company_id);
ALTER TABLE public.customer_events ADD CONSTRAINT customer_events_pkey PRIMARY KEY (id, company_id);
ALTER TABLE public.customer_audit_log ADD CONSTRAINT customer_audit_log_pkey PRIMARY KEY (id, company_id);
-- the seed's unique index 27
ALTER TABLE public.customer_metrics ADD CONSTRAINT idx_customer_metrics_id PRIMARY KEY (customer_id, company_id);
ALTER TABLE public.customer_conversation_summaries
    ADD CONSTRAINT customer_conversation_summaries_pkey PRIMARY KEY (id, company_id);
ALTER TABLE public.customer_merge_log ADD CONSTRAINT customer_merge_log_pkey PRIMARY KEY (id, company_id);

-- ---------------------------------------------------------------------------
-- 3. Reference tables, then the distributed tables, all co-located with
--    customers (shard count: citus.shard_count, 32 by default).
-- ---------------------------------------------------------------------------
SELECT create_reference_table('public.companies');
SELECT create_reference_table('public.users');
SELECT create_distributed_table('public.customers', 'company_id');
SELECT create_distributed_table('public."VC Usage"', 'company_id', colocate_with => 'public.customers');
SELECT create_distributed_table('public.customer_matching_keys', 'company_id', colocate_with => 'public.customers');
SELECT create_distributed_table('public.customer_events', 'company_id', colocate_with => 'public.customers');
SELECT create_distributed_table('public.customer_audit_log', 'company_id', colocate_with => 'public.customers');
SELECT create_distributed_table('public.customer_metrics', 'company_id', colocate_with => 'public.customers');
SELECT create_distributed_table('public.customer_conversation_summaries', 'company_id', colocate_with => 'public.customers');
SELECT create_distributed_table('public.customer_merge_log', 'company_id', colocate_with => 'public.customers');

-- The rows copied into the shards stay behind in the coordinator's shell
-- tables until removed (invisible, but they take space).
SELECT truncate_local_data_after_distributing_table(t)
  FROM unnest(ARRAY['public.companies', 'public.users', 'public.customers', 'public."VC Usage"',
                    'public.customer_matching_keys', 'public.customer_events', 'public.customer_audit_log',
                    'public.customer_metrics', 'public.customer_conversation_summaries',
                    'public.customer_merge_log']::regclass[]) AS t;

-- ---------------------------------------------------------------------------
-- 4. Foreign keys again: to the reference tables as before; between
--    distributed tables with company_id in the same (second) position on
--    both sides.
-- ---------------------------------------------------------------------------
ALTER TABLE public.users ADD CONSTRAINT users_company_id_fkey
    FOREIGN KEY (company_id) REFERENCES public.companies (id);

ALTER TABLE public.customers ADD CONSTRAINT customers_company_id_fkey
    FOREIGN KEY (company_id) REFERENCES public.companies (id);
ALTER TABLE public.customers ADD CONSTRAINT customers_created_by_user_id_fkey
    FOREIGN KEY (created_by_user_id) REFERENCES public.users (id);
-- A customer can only be merged into a customer of its own company now.
ALTER TABLE public.customers ADD CONSTRAINT customers_merged_into_customer_id_fkey
    FOREIGN KEY (merged_into_customer_id, company_id) REFERENCES public.customers (id, company_id);

ALTER TABLE public."VC Usage" ADD CONSTRAINT "VC Usage_company_id_fkey"
    FOREIGN KEY (company_id) REFERENCES public.companies (id);
ALTER TABLE public."VC Usage" ADD CONSTRAINT "VC Usage_user_id_fkey"
    FOREIGN KEY (user_id) REFERENCES public.users (id);
-- was ON DELETE SET NULL: see crm_citus_unlink_chats() below
ALTER TABLE public."VC Usage" ADD CONSTRAINT "VC Usage_customer_id_fkey"
    FOREIGN KEY (customer_id, company_id) REFERENCES public.customers (id, company_id);

ALTER TABLE public.customer_matching_keys ADD CONSTRAINT customer_matching_keys_customer_id_fkey
    FOREIGN KEY (customer_id, company_id) REFERENCES public.customers (id, company_id) ON DELETE CASCADE;
ALTER TABLE public.customer_matching_keys ADD CONSTRAINT customer_matching_keys_company_id_fkey
    FOREIGN KEY (company_id) REFERENCES public.companies (id);

ALTER TABLE public.customer_events ADD CONSTRAINT customer_events_customer_id_fkey
    FOREIGN KEY (customer_id, company_id) REFERENCES public.customers (id, company_id) ON DELETE CASCADE;
ALTER TABLE public.customer_events ADD CONSTRAINT customer_events_company_id_fkey
    FOREIGN KEY (company_id) REFERENCES public.companies (id);

ALTER TABLE public.customer_metrics ADD CONSTRAINT customer_metrics_customer_id_fkey
    FOREIGN KEY (customer_id, company_id) REFERENCES public.customers (id, company_id) ON DELETE CASCADE;

ALTER TABLE public.customer_conversation_summaries ADD CONSTRAINT customer_conversation_summaries_customer_id_fkey
    FOREIGN KEY (customer_id, company_id) REFERENCES public.customers (id, company_id) ON DELETE CASCADE;
ALTER TABLE public.customer_conversation_summaries ADD CONSTRAINT customer_conversation_summaries_company_id_fkey
    FOREIGN KEY (company_id) REFERENCES public.companies (id);

ALTER TABLE public.customer_merge_log ADD CONSTRAINT customer_merge_log_company_id_fkey
    FOREIGN KEY (company_id) REFERENCES public.companies (id);

-- ---------------------------------------------------------------------------
-- 5. ON DELETE SET NULL of "VC Usage".customer_id, as a trigger. It runs on
--    the customers shard (triggers fire on the shards) and updates the
--    co-located "VC Usage" shard on the same node: a statement on the
--    distributed table would be a distributed query from a query on a shard,
--    which Citus refuses. SECURITY DEFINER (the migration role, the tables'
--    owner), like the foreign key action it replaces, which ignores
--    row-level security; search_path pinned.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.crm_citus_unlink_chats() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_chats text;
BEGIN
    IF TG_RELID = 'public.customers'::regclass THEN
        v_chats := 'public."VC Usage"';    -- not a shard (a plain table)
    ELSE
        v_chats := shard_name('public."VC Usage"'::regclass,
                              get_shard_id_for_distribution_column('public."VC Usage"'::regclass, OLD.company_id));
    END IF;
    EXECUTE format('UPDATE %s SET customer_id = NULL WHERE customer_id = $1 AND company_id = $2', v_chats)
      USING OLD.id, OLD.company_id;
    RETURN OLD;
END;
$$;
REVOKE ALL ON FUNCTION public.crm_citus_unlink_chats() FROM PUBLIC;

CREATE TRIGGER trg_customers_unlink_chats
    BEFORE DELETE ON public.customers
    FOR EACH ROW EXECUTE FUNCTION public.crm_citus_unlink_chats();

-- ---------------------------------------------------------------------------
-- 6. Soft delete under row-level security (03_rls.sql). The customers SELECT
--    policy keeps a customer visible to the transaction that soft-deletes it
--    through "deleted_at >= now()". On Citus the application's
--    "SET deleted_at = now()" is evaluated on the coordinator, and the shard's
--    policy compares it with the worker transaction's now(), which started
--    later: every soft delete by crm_app failed with "new row violates
--    row-level security policy for table customers_<shard>". When row-level
--    security applies to the caller and the new deleted_at lies less than a
--    minute before the worker's now() (the coordinator/worker gap), it is
--    moved up to now(). A deleted_at back-dated by more than that is left
--    alone, and refused by the policy as on a single node.
-- ---------------------------------------------------------------------------
CREATE FUNCTION public.crm_citus_soft_delete_now() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL
       AND NEW.deleted_at < now() AND NEW.deleted_at >= now() - interval '1 minute'
       AND row_security_active(TG_RELID) THEN
        NEW.deleted_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_customers_citus_soft_delete_now
    BEFORE UPDATE OF deleted_at ON public.customers
    FOR EACH ROW EXECUTE FUNCTION public.crm_citus_soft_delete_now();

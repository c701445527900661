-- Reference application migration, part 3: tenant isolation by row-level
-- security (docs/contract.md, "The application schema"). The application connects as the
-- non-owner role crm_app and sets, per request or transaction:
--     SET app.current_company_id = '<tenant uuid>';
--     SET app.current_user_id    = '<user uuid>';   -- audit attribution
-- The tables' owner (the migration role) is not subject to these policies.
-- With app.current_company_id unset or empty, crm_app sees and writes nothing.
--
-- Soft-deleted customers are hidden from crm_app (seed test 4.4). Soft
-- delete itself must still work for crm_app:
--     UPDATE customers SET deleted_at = now() WHERE ...;
-- An UPDATE that reads the table (WHERE/RETURNING) checks the NEW row against
-- the SELECT policies too, so a SELECT policy of plain "deleted_at IS NULL"
-- would reject every soft delete ("new row violates row-level security
-- policy"). The SELECT policy therefore hides a customer once its deleted_at
-- lies before the start of the current transaction:
--     deleted_at IS NULL OR deleted_at >= now()      (now() = transaction start)
-- so the transaction that soft-deletes a customer (with now(), or any later
-- time such as clock_timestamp()) still sees it (its UPDATE, RETURNING and
-- triggers work), and every later transaction does not. A soft delete
-- back-dated before the transaction start is refused for crm_app; restoring
-- a customer (deleted_at = NULL) is an owner/administrator operation, since
-- crm_app cannot see a deleted customer. docs/reference.md has the details.
SET client_min_messages = warning;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_app') THEN
        CREATE ROLE crm_app NOLOGIN;   -- roles are cluster-wide: create once
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA public TO crm_app;
GRANT SELECT ON public.companies, public.users TO crm_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    public.customers, public."VC Usage", public.customer_matching_keys, public.customer_events,
    public.customer_metrics, public.customer_conversation_summaries, public.customer_merge_log
    TO crm_app;
-- the audit trail is append-only for the application
GRANT SELECT, INSERT ON public.customer_audit_log TO crm_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO crm_app;

-- The current tenant, NULL when unset (then no row matches).
CREATE FUNCTION public.current_company_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN NULLIF(current_setting('app.current_company_id', true), '')::uuid;

ALTER TABLE public.companies                       ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.users                           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customers                       ENABLE ROW LEVEL SECURITY;
ALTER TABLE public."VC Usage"                      ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customer_matching_keys          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customer_events                 ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customer_audit_log              ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customer_metrics                ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customer_conversation_summaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.customer_merge_log              ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON public.companies
    USING (id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.users
    USING (company_id = public.current_company_id());

-- customers: per command, so that soft-deleted rows are hidden but soft
-- delete works (header).
CREATE POLICY tenant_select ON public.customers FOR SELECT
    USING (company_id = public.current_company_id()
           AND (deleted_at IS NULL OR deleted_at >= now()));
CREATE POLICY tenant_insert ON public.customers FOR INSERT
    WITH CHECK (company_id = public.current_company_id());
CREATE POLICY tenant_update ON public.customers FOR UPDATE
    USING (company_id = public.current_company_id() AND deleted_at IS NULL)
    WITH CHECK (company_id = public.current_company_id());
CREATE POLICY tenant_delete ON public.customers FOR DELETE
    USING (company_id = public.current_company_id() AND deleted_at IS NULL);

CREATE POLICY tenant_isolation ON public."VC Usage"
    USING (company_id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.customer_matching_keys
    USING (company_id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.customer_events
    USING (company_id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.customer_audit_log
    USING (company_id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.customer_metrics
    USING (company_id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.customer_conversation_summaries
    USING (company_id = public.current_company_id());
CREATE POLICY tenant_isolation ON public.customer_merge_log
    USING (company_id = public.current_company_id());

-- Reference application migration, part 1: the CRM schema that crm_native
-- plugs into (docs/contract.md, "The application schema"). This is the application's schema,
-- not the extension's: tests and benchmarks build their databases from it.
-- Part 2 (02_plpgsql_triggers.sql) holds the plpgsql triggers it runs today.
--
-- Load with:  psql -v ON_ERROR_STOP=1 -f reference/01_schema.sql -f reference/02_...
SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE companies (
    id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL
);

CREATE TABLE users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text,
    company_id uuid REFERENCES companies (id)
);

CREATE TABLE customers (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id                 uuid NOT NULL REFERENCES companies (id),
    customer_name              text,
    customer_email             text,
    customer_phone             text,
    customer_address           text,
    status                     text DEFAULT 'active',
    lifecycle_stage            text DEFAULT 'prospect'
        CHECK (lifecycle_stage IN ('prospect', 'lead', 'customer', 'churned')),
    lifecycle_stage_changed_at timestamptz,
    tags                       text[] DEFAULT '{}',
    source                     text,
    source_campaign            text,
    customer_notes             text,
    metadata                   jsonb DEFAULT '{}',
    created_by_user_id         uuid REFERENCES users (id),
    created_at                 timestamptz DEFAULT now(),
    updated_at                 timestamptz DEFAULT now(),
    deleted_at                 timestamptz,
    merged_into_customer_id    uuid REFERENCES customers (id)
);

-- Chat conversations. The name has a space and capitals: always quote it.
CREATE TABLE "VC Usage" (
    id                 bigserial PRIMARY KEY,
    company_id         uuid NOT NULL REFERENCES companies (id),
    user_id            uuid REFERENCES users (id),
    customer_id        uuid REFERENCES customers (id) ON DELETE SET NULL,
    customer_name      text,
    customer_email     text,
    customer_phone     text,
    session_id         text,
    interaction_number int,
    user_message       text,
    ai_response        text,
    view_count         int DEFAULT 0,
    created_at         timestamptz DEFAULT now()
);

CREATE TABLE customer_matching_keys (
    id               bigserial PRIMARY KEY,
    customer_id      uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    company_id       uuid NOT NULL REFERENCES companies (id),
    key_type         text NOT NULL CHECK (key_type IN ('name', 'email', 'phone')),
    key_value        text,
    normalized_value text,
    created_at       timestamptz DEFAULT now()
);

CREATE TABLE customer_events (
    id          bigserial PRIMARY KEY,
    customer_id uuid REFERENCES customers (id) ON DELETE CASCADE,
    company_id  uuid REFERENCES companies (id),
    event_type  text NOT NULL,
    event_data  jsonb DEFAULT '{}',
    created_at  timestamptz DEFAULT now()
);

-- No foreign key to customers: the audit trail outlives the rows it records.
CREATE TABLE customer_audit_log (
    id                 bigserial PRIMARY KEY,
    table_name         text NOT NULL,
    record_id          uuid,
    company_id         uuid,
    operation          text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    old_data           jsonb,
    new_data           jsonb,
    changed_fields     text[],
    changed_by_user_id uuid,
    changed_at         timestamptz DEFAULT now()
);

-- Kept by triggers (it was a materialized view in the seed documents).
CREATE TABLE customer_metrics (
    customer_id          uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    company_id           uuid,
    total_conversations  bigint NOT NULL DEFAULT 0,
    total_sessions       bigint NOT NULL DEFAULT 0,
    total_views          bigint NOT NULL DEFAULT 0,
    first_interaction_at timestamptz,
    last_interaction_at  timestamptz,
    refreshed_at         timestamptz DEFAULT now(),
    -- the seed's unique index 27 is the primary key's index
    CONSTRAINT idx_customer_metrics_id PRIMARY KEY (customer_id)
);

CREATE TABLE customer_conversation_summaries (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id       uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    company_id        uuid NOT NULL REFERENCES companies (id),
    session_id        text,
    conversation_date timestamptz DEFAULT now(),
    summary           text,
    extracted_topics  jsonb DEFAULT '[]',
    created_at        timestamptz DEFAULT now()
);

CREATE TABLE customer_merge_log (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id         uuid REFERENCES companies (id),
    source_customer_id uuid,
    target_customer_id uuid,
    merged_by_user_id  uuid,
    merge_reason       text,
    merged_data        jsonb,
    merged_at          timestamptz DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- The seed's 28 indexes (index-and-trigger-verification.md, section 1).
-- ---------------------------------------------------------------------------
-- customers (1: customers_pkey above)
CREATE INDEX idx_customers_not_deleted ON customers (company_id, deleted_at) WHERE deleted_at IS NULL;
CREATE INDEX idx_customers_company_status ON customers (company_id, status) WHERE deleted_at IS NULL;
CREATE INDEX idx_customers_lifecycle ON customers (company_id, lifecycle_stage) WHERE deleted_at IS NULL;
CREATE INDEX idx_customers_name_trgm ON customers USING gin (customer_name gin_trgm_ops) WHERE deleted_at IS NULL;
CREATE INDEX idx_customers_email ON customers (company_id, customer_email)
    WHERE deleted_at IS NULL AND customer_email IS NOT NULL;
CREATE INDEX idx_customers_phone ON customers (company_id, customer_phone)
    WHERE deleted_at IS NULL AND customer_phone IS NOT NULL;
CREATE INDEX idx_customers_tags ON customers USING gin (tags) WHERE deleted_at IS NULL;
CREATE INDEX customers_company_id_fkey ON customers (company_id);
CREATE INDEX customers_merged_into_customer_id_fkey ON customers (merged_into_customer_id);
-- "VC Usage"
CREATE INDEX idx_vc_usage_customer_fk ON "VC Usage" (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX idx_vc_usage_company_customer ON "VC Usage" (company_id, customer_id, created_at DESC)
    WHERE customer_id IS NOT NULL;
CREATE INDEX idx_vc_usage_session_customer ON "VC Usage" (session_id, customer_id);
-- customer_matching_keys: the contract asks for company_id in front, so a
-- lookup never crosses tenants.
CREATE INDEX idx_matching_keys_normalized ON customer_matching_keys (company_id, key_type, normalized_value);
CREATE INDEX idx_matching_keys_customer ON customer_matching_keys (customer_id);
-- customer_conversation_summaries
CREATE INDEX idx_conversation_summaries_customer ON customer_conversation_summaries (customer_id, conversation_date DESC);
CREATE INDEX idx_conversation_topics ON customer_conversation_summaries USING gin (extracted_topics);
-- customer_merge_log
CREATE INDEX idx_merge_log_source ON customer_merge_log (source_customer_id);
CREATE INDEX idx_merge_log_target ON customer_merge_log (target_customer_id);
CREATE INDEX idx_merge_log_date ON customer_merge_log (merged_at DESC);
-- customer_events
CREATE INDEX idx_customer_events_customer ON customer_events (customer_id, created_at DESC);
CREATE INDEX idx_customer_events_company ON customer_events (company_id, created_at DESC);
CREATE INDEX idx_customer_events_type ON customer_events (event_type, created_at DESC);
-- customer_audit_log
CREATE INDEX idx_audit_log_record ON customer_audit_log (table_name, record_id, changed_at DESC);
CREATE INDEX idx_audit_log_company ON customer_audit_log (company_id, changed_at DESC);
CREATE INDEX idx_audit_log_user ON customer_audit_log (changed_by_user_id, changed_at DESC);
-- customer_metrics
-- (27: idx_customer_metrics_id is the primary key above)
CREATE INDEX idx_customer_metrics_company ON customer_metrics (company_id);

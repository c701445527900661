-- The data-access layer (src/pg/store.hpp): one column list, one plan cache,
-- one trigger-protocol check, shared by every native trigger and install().
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Real');

-- 1. install() and the triggers check the same list: the view is the list
-- compiled into the library.
SELECT table_name, column_name, types FROM crm_native.required_column
 WHERE (table_name, column_name) IN (('VC Usage', 'id'), ('VC Usage', 'view_count'), ('VC Usage', 'session_id'),
                                     ('customers', 'lifecycle_stage'), ('customer_metrics', 'total_views'))
 ORDER BY ordinal;
SELECT count(*) AS columns, count(DISTINCT table_name) AS tables FROM crm_native.required_column;

-- A trigger attached by hand to a table whose column the list refuses gets
-- the list's error (the one install() reports), naming column and type.
CREATE TABLE chats_mistyped (id bigint, company_id uuid, customer_id uuid, customer_name text,
                             customer_email integer, customer_phone text, session_id text);
CREATE TRIGGER sync BEFORE INSERT ON chats_mistyped FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync();
INSERT INTO chats_mistyped (company_id, customer_email) VALUES ('11111111-1111-1111-1111-111111111111', 1);
SELECT crm_native.missing_objects() = '{}' AS reference_schema_complete;
-- The sync reads the contact columns and session_id only when it syncs: an
-- UPDATE of other columns, or an INSERT that names its customer, does not
-- fail on their types (the chat UPDATE trigger fires for every UPDATE; an
-- application's migration of a contact column to another type broke every
-- chat UPDATE; found by an independent tester). A sync still names the
-- column and its type.
INSERT INTO customers (id, company_id, customer_email)
VALUES ('c0000000-0000-4000-8000-00000000000c', '11111111-1111-1111-1111-111111111111', 'typed@example.com');
INSERT INTO chats_mistyped (company_id, customer_id, customer_email)
VALUES ('11111111-1111-1111-1111-111111111111', 'c0000000-0000-4000-8000-00000000000c', 2);
CREATE TRIGGER sync_update BEFORE UPDATE ON chats_mistyped FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync();
UPDATE chats_mistyped SET session_id = 's1' WHERE customer_email = 2;
UPDATE chats_mistyped SET customer_email = 3 WHERE customer_email = 2;

-- 2. One trigger-protocol check: a misdeclared trigger is refused with how
-- it must be declared.
CREATE TRIGGER sync_after AFTER INSERT ON chats_mistyped FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync();
DROP TRIGGER sync ON chats_mistyped;
INSERT INTO chats_mistyped (company_id, customer_email) VALUES ('11111111-1111-1111-1111-111111111111', 1);
DROP TABLE chats_mistyped;
-- Arguments: none, or for the metrics triggers install() puts on partitions
-- the one argument 'partition'.
CREATE TABLE chats_with_args (LIKE "VC Usage" INCLUDING DEFAULTS);
CREATE TRIGGER sync_with_arg BEFORE INSERT ON chats_with_args FOR EACH ROW EXECUTE FUNCTION crm_native.customer_sync('partition');
INSERT INTO chats_with_args (company_id, customer_email) VALUES ('11111111-1111-1111-1111-111111111111', 'x@example.com');
DROP TRIGGER sync_with_arg ON chats_with_args;
CREATE TRIGGER metrics_with_arg AFTER INSERT ON chats_with_args REFERENCING NEW TABLE AS crm_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_insert('partitions');
INSERT INTO chats_with_args (company_id, customer_email) VALUES ('11111111-1111-1111-1111-111111111111', 'x@example.com');
DROP TABLE chats_with_args;

-- 3. One plan cache, replaced exactly when a statement's text would change.
-- Plans are made in schema public ...
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann@example.com', 's1', 2);
-- ... then the schema and the chat table are renamed. The kept plans name
-- "public"."VC Usage": used as they were, they would fail (or write to the
-- old names); replaced, every trigger writes to the renamed tables.
ALTER SCHEMA public RENAME TO crm_app_schema;
SET search_path = crm_app_schema;
ALTER TABLE "VC Usage" RENAME TO chats;
INSERT INTO chats (company_id, customer_email, session_id, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann@example.com', 's2', 3),
         ('11111111-1111-1111-1111-111111111111', 'bob@example.com', 's3', 1);
INSERT INTO chats (company_id, customer_email, session_id, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann@example.com', 's2', 4);
UPDATE customers SET lifecycle_stage = 'customer' WHERE customer_email = 'bob@example.com';
SELECT c.customer_email, m.total_conversations, m.total_sessions, m.total_views
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id ORDER BY 1;
SELECT c.customer_email, e.event_type FROM customer_events e JOIN customers c ON c.id = e.customer_id
 ORDER BY 1, e.created_at, 2;
SELECT operation, count(*) FROM customer_audit_log GROUP BY 1 ORDER BY 1;
SELECT count(*) AS keys FROM customer_matching_keys;
ALTER TABLE chats RENAME TO "VC Usage";
SELECT count(*) = 0 AS metrics_agree FROM crm_native.verify_metrics('crm_app_schema');
ALTER SCHEMA crm_app_schema RENAME TO public;

RESET search_path;
-- 4. ON CONFLICT targets come from the table's actual key. On a single node
-- that is a unique key on customer_id alone: a per-company key
-- (customer_id, company_id), as Citus requires, would let a row of the same
-- customer under another company through, so it is refused here with a clear
-- error, before anything is written (on a Citus shard it is the key:
-- test/run.d/citus.sh). Plans made with the old key are replaced.
ALTER TABLE customer_metrics DROP CONSTRAINT idx_customer_metrics_id;
ALTER TABLE customer_metrics ALTER COLUMN company_id SET NOT NULL;
ALTER TABLE customer_metrics ADD PRIMARY KEY (customer_id, company_id);
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's5', 1),
         ('11111111-1111-1111-1111-111111111111', 'dee@example.com', 's6', 1);
SELECT count(*) AS cy_rows FROM customers WHERE customer_email = 'cy@example.com';
-- Without any unique key on customer_id: the same error.
ALTER TABLE customer_metrics DROP CONSTRAINT customer_metrics_pkey;
INSERT INTO "VC Usage" (company_id, customer_email, session_id)
  VALUES ('11111111-1111-1111-1111-111111111111', 'eve@example.com', 's7');
-- The key back: the chats go through, metrics exact.
ALTER TABLE customer_metrics ADD CONSTRAINT idx_customer_metrics_id PRIMARY KEY (customer_id);
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's5', 1),
         ('11111111-1111-1111-1111-111111111111', 'dee@example.com', 's6', 1);
SELECT c.customer_email, m.total_conversations, m.total_sessions
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id ORDER BY 1;
SELECT count(*) = 0 AS metrics_agree FROM crm_native.verify_metrics();
-- No Citus here: nothing is distributed, nothing to report.
SELECT count(*) AS citus_problems FROM crm_native.citus_problems();

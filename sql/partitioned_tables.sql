-- Partitioned tables. A row trigger on a partitioned table fires on the
-- partition the row lands in (PostgreSQL clones it onto each partition), and
-- a partition may live in any schema and holds only part of the rows. The
-- native triggers find the CRM tables in the schema of the partitioned table
-- the trigger was attached to, and read the chats of a customer across every
-- partition (docs/contract.md, "The application schema").
SET client_min_messages = warning;
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Acme');

-- The chat table partitioned by time, the old year in a schema of its own.
ALTER TABLE "VC Usage" RENAME TO vc_usage_flat;
CREATE TABLE "VC Usage" (LIKE vc_usage_flat INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (created_at);
ALTER TABLE "VC Usage" ADD PRIMARY KEY (id, created_at),
    ADD FOREIGN KEY (company_id) REFERENCES companies (id),
    ADD FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE SET NULL;
CREATE INDEX ON "VC Usage" (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX ON "VC Usage" (session_id, customer_id);
CREATE INDEX ON "VC Usage" (company_id, customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
ALTER SEQUENCE "VC Usage_id_seq" OWNED BY "VC Usage".id;
DROP TABLE vc_usage_flat;   -- and its plpgsql triggers
CREATE SCHEMA archive;
CREATE TABLE archive.chats_2024 PARTITION OF "VC Usage" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE chats_recent PARTITION OF "VC Usage" DEFAULT;
GRANT SELECT, INSERT, UPDATE, DELETE ON "VC Usage" TO crm_app;
-- The trigger attached to "VC Usage" fires on its partitions.
SELECT trigger_name, table_name, implementation FROM crm_native.install() WHERE table_name <> 'customers' ORDER BY 1;

-- A chat that lands in archive.chats_2024: its customer, keys and event are
-- written in public, not looked for in archive (before, that failed:
-- relation "archive.customer_matching_keys" does not exist).
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann@example.com', 's1', '2024-05-01');
-- The same customer's chats in the other partition, one in the same session:
-- the session probe reads both partitions (2 sessions, not 3).
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann@example.com', 's1', '2026-05-01');
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'ann@example.com', 's2', '2026-06-01'),
         ('11111111-1111-1111-1111-111111111111', 'bob@example.com', 's3', '2024-06-01');
-- As crm_app, which has no access to schema archive at all.
SET ROLE crm_app;
SET app.current_company_id = '11111111-1111-1111-1111-111111111111';
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'bob@example.com', 's3', '2024-07-01');
RESET ROLE;
SELECT n.nspname AS partition_schema, c.customer_email, v.session_id, v.created_at::date
  FROM "VC Usage" v JOIN customers c ON c.id = v.customer_id
  JOIN pg_class p ON p.oid = v.tableoid JOIN pg_namespace n ON n.oid = p.relnamespace
 ORDER BY v.created_at;
SELECT c.customer_email, m.total_conversations, m.total_sessions, m.first_interaction_at::date, m.last_interaction_at::date
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id ORDER BY 1;
SELECT count(*) AS customers, (SELECT count(*) FROM customer_matching_keys) AS keys,
       (SELECT count(*) FROM customer_events WHERE event_type = 'created') AS created_events
  FROM customers;
-- A chat that moves to the other partition (UPDATE of the partition key:
-- a delete from one, an insert into the other) and to another session; a
-- chat deleted. The metrics follow.
UPDATE "VC Usage" SET created_at = '2024-08-01', session_id = 's4'
 WHERE session_id = 's2' AND customer_email = 'ann@example.com';
DELETE FROM "VC Usage" WHERE session_id = 's1' AND created_at = '2024-05-01';
SELECT c.customer_email, m.total_conversations, m.total_sessions, m.first_interaction_at::date, m.last_interaction_at::date
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id ORDER BY 1;
SELECT count(*) = 0 AS metrics_agree FROM crm_native.verify_metrics();
-- Known limit (docs/contract.md, step 1): a chat still linked to a customer
-- soft-deleted since cannot move to another partition, since the move is an
-- INSERT into the new partition that names the customer (23503). Telling a
-- move from a new row inside the trigger was tried and reverted: a copy of
-- the moved row made by the same statement (a writable CTE, MERGE) or a move
-- by a function the INSERT calls looked the same.
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'gone@example.com', 'g1', '2026-05-01');
UPDATE customers SET deleted_at = now() WHERE customer_email = 'gone@example.com';
\set VERBOSITY sqlstate
UPDATE "VC Usage" SET created_at = '2024-05-01' WHERE session_id = 'g1';
\set VERBOSITY default
DELETE FROM "VC Usage" WHERE session_id = 'g1';
DELETE FROM customers WHERE customer_email = 'gone@example.com';

-- The CRM schema's "VC Usage" itself a partition of another schema's table
-- (every tenant schema's chats under one table): the triggers install()
-- attached to public."VC Usage" keep finding the CRM tables in public, not in
-- the schema of the tree's root.
CREATE SCHEMA shared;
CREATE TABLE shared.all_chats (LIKE "VC Usage") PARTITION BY LIST (company_id);
ALTER TABLE shared.all_chats ATTACH PARTITION "VC Usage" FOR VALUES IN ('11111111-1111-1111-1111-111111111111');
-- and a sub-partitioned partition in schema archive: its leaf's triggers
-- are clones of clones (pg_trigger.tgparentid followed twice). Made with
-- crm_native.attach_partition_triggers off, as under 0.5.0: the event
-- trigger that puts the metrics triggers on new partitions does nothing.
SET crm_native.attach_partition_triggers = off;
CREATE TABLE archive.chats_2023 PARTITION OF "VC Usage" FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')
    PARTITION BY RANGE (created_at);
CREATE TABLE archive.chats_2023_rest PARTITION OF archive.chats_2023 DEFAULT;
RESET crm_native.attach_partition_triggers;
INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's9', '2026-09-01'),
         ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's9', '2024-09-01'),
         ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's8', '2023-09-01');
SELECT c.customer_email, m.total_conversations, m.total_sessions
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id WHERE c.customer_email = 'cy@example.com';
-- A statement fires the statement triggers of the table it names only, so
-- install() also puts the metrics triggers on each partition (with the
-- argument 'partition'). archive.chats_2023 came after install() and
-- without the event trigger: until install() runs again, verify_schema()
-- reports its triggers missing.
SELECT object, status FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok' ORDER BY 1;
SELECT count(*) > 0 AS installed FROM crm_native.install();
SELECT count(*) AS trigger_problems FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok';
SELECT c.relname AS partition, t.tgname, pg_get_triggerdef(t.oid) LIKE '%(''partition'')' AS with_argument
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE t.tgfoid = 'crm_native.metrics_insert'::regproc ORDER BY 1;
-- Chats written straight into partitions are linked and counted, once: an
-- INSERT naming a leaf, one naming a sub-partitioned partition (its rows go
-- to the leaf below), an UPDATE naming a leaf in schema archive, a DELETE
-- naming the leaf under archive.chats_2023.
INSERT INTO chats_recent (company_id, customer_email, session_id, created_at, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's10', '2026-10-01', 2);
INSERT INTO archive.chats_2023 (company_id, customer_email, session_id, created_at, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's11', '2023-10-01', 3),
         ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's11', '2023-11-01', 4);
UPDATE archive.chats_2024 SET view_count = 7 WHERE session_id = 's9';
DELETE FROM archive.chats_2023_rest WHERE session_id = 's8';
UPDATE archive.chats_2023 SET view_count = view_count + 1 WHERE session_id = 's11';
INSERT INTO archive.chats_2023 (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's15', '2023-12-01');
DELETE FROM archive.chats_2023 WHERE session_id = 's15';
SELECT count(*) AS linked FROM "VC Usage" v JOIN customers c ON c.id = v.customer_id WHERE c.customer_email = 'cy@example.com';
SELECT c.customer_email, m.total_conversations, m.total_sessions, m.total_views, m.first_interaction_at::date
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id WHERE c.customer_email = 'cy@example.com';
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- A partition created or attached after install() gets them at once, from
-- the event trigger crm_native_partition_triggers (PostgreSQL clones only
-- row triggers onto it): CREATE TABLE ... PARTITION OF, ATTACH PARTITION,
-- and a partition of a sub-partitioned partition made after it.
CREATE TABLE archive.chats_2022 PARTITION OF "VC Usage" FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
CREATE TABLE archive.chats_2021 (LIKE "VC Usage" INCLUDING DEFAULTS);
ALTER TABLE "VC Usage" ATTACH PARTITION archive.chats_2021 FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
CREATE TABLE archive.chats_2020 PARTITION OF "VC Usage" FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')
    PARTITION BY RANGE (created_at);
CREATE TABLE archive.chats_2020_h1 PARTITION OF archive.chats_2020 FOR VALUES FROM ('2020-01-01') TO ('2020-07-01');
SELECT t.tgrelid::regclass AS partition, count(*) AS metrics_triggers,
       bool_and(pg_get_triggerdef(t.oid) LIKE '%(''partition'')') AS with_argument
  FROM pg_trigger t
 WHERE t.tgfoid IN ('crm_native.metrics_insert'::regproc, 'crm_native.metrics_update'::regproc, 'crm_native.metrics_delete'::regproc)
   AND t.tgrelid::regclass::text LIKE 'archive.chats_202%'
 GROUP BY 1 ORDER BY 1::text;
SELECT count(*) AS trigger_problems FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok';
INSERT INTO archive.chats_2022 (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'dz@example.com', 's20', '2022-03-01');
INSERT INTO archive.chats_2021 (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'dz@example.com', 's21', '2021-03-01');
INSERT INTO archive.chats_2020 (company_id, customer_email, session_id, created_at, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'dz@example.com', 's22', '2020-03-01', 5);
UPDATE archive.chats_2020_h1 SET view_count = 6 WHERE session_id = 's22';
DELETE FROM archive.chats_2021 WHERE session_id = 's21';
SELECT c.customer_email, m.total_conversations, m.total_sessions, m.total_views, m.first_interaction_at::date
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id WHERE c.customer_email = 'dz@example.com';
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- Also one created by CREATE SCHEMA ... CREATE TABLE (reported under that
-- tag); and the event trigger locks no partition but the new one.
CREATE SCHEMA y2016 CREATE TABLE chats_2016 PARTITION OF "VC Usage" FOR VALUES FROM ('2016-01-01') TO ('2017-01-01');
SELECT count(*) AS metrics_triggers FROM pg_trigger
 WHERE tgrelid = 'y2016.chats_2016'::regclass AND tgname LIKE 'trg_vc_usage_metrics%';
DROP SCHEMA y2016 CASCADE;
BEGIN;
CREATE TABLE archive.chats_2015 PARTITION OF "VC Usage" FOR VALUES FROM ('2015-01-01') TO ('2016-01-01');
SELECT count(*) AS metrics_triggers FROM pg_trigger
 WHERE tgrelid = 'archive.chats_2015'::regclass AND tgname LIKE 'trg_vc_usage_metrics%';
SELECT relation::regclass AS other_partition_locked FROM pg_locks
 WHERE pid = pg_backend_pid() AND locktype = 'relation'
   AND relation IN ('archive.chats_2024'::regclass, 'archive.chats_2022'::regclass, 'archive.chats_2020_h1'::regclass);
ROLLBACK;
-- A new partition takes the enabled state of the trigger on "VC Usage".
ALTER TABLE "VC Usage" DISABLE TRIGGER trg_vc_usage_metrics_refresh_ins;
CREATE TABLE archive.chats_2019 PARTITION OF "VC Usage" FOR VALUES FROM ('2019-01-01') TO ('2020-01-01');
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'archive.chats_2019'::regclass AND NOT tgisinternal
   AND tgname LIKE 'trg_vc_usage_metrics%' ORDER BY 1;
ALTER TABLE "VC Usage" ENABLE TRIGGER trg_vc_usage_metrics_refresh_ins;
ALTER TABLE archive.chats_2019 ENABLE TRIGGER trg_vc_usage_metrics_refresh_ins;
-- Also when the table's owner, who makes the partition, has no USAGE on
-- schema crm_native (the event trigger runs as the extension's owner).
CREATE ROLE crm_parts_owner;
GRANT CREATE ON SCHEMA archive TO crm_parts_owner;
ALTER TABLE "VC Usage" OWNER TO crm_parts_owner;
SET ROLE crm_parts_owner;
SELECT has_schema_privilege('crm_native', 'USAGE') AS owner_uses_crm_native;
CREATE TABLE archive.chats_2017 PARTITION OF "VC Usage" FOR VALUES FROM ('2017-01-01') TO ('2018-01-01');
RESET ROLE;
SELECT count(*) AS metrics_triggers FROM pg_trigger
 WHERE tgrelid = 'archive.chats_2017'::regclass AND tgname LIKE 'trg_vc_usage_metrics%';
ALTER TABLE "VC Usage" OWNER TO CURRENT_USER;
DROP TABLE archive.chats_2017;
REVOKE CREATE ON SCHEMA archive FROM crm_parts_owner;
DROP ROLE crm_parts_owner;
-- When it cannot (here: the new partition has a trigger of that name that
-- crm_native does not own), the ATTACH still succeeds, with a warning;
-- verify_schema() reports the partition until install() can do it.
CREATE TABLE archive.chats_2018 (LIKE "VC Usage" INCLUDING DEFAULTS);
CREATE FUNCTION app_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER trg_vc_usage_metrics_refresh_ins AFTER INSERT ON archive.chats_2018
    FOR EACH STATEMENT EXECUTE FUNCTION app_noop();
ALTER TABLE "VC Usage" ATTACH PARTITION archive.chats_2018 FOR VALUES FROM ('2018-01-01') TO ('2019-01-01');
SELECT count(*) AS attached FROM pg_inherits WHERE inhrelid = 'archive.chats_2018'::regclass;
SELECT object, status FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok' ORDER BY 1;
DROP TRIGGER trg_vc_usage_metrics_refresh_ins ON archive.chats_2018;
SELECT count(*) > 0 AS installed FROM crm_native.install();
SELECT count(*) AS trigger_problems FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok';
DROP TABLE archive.chats_2022, archive.chats_2021, archive.chats_2020, archive.chats_2019, archive.chats_2018;
SELECT crm_native.rebuild_metrics() IS NOT NULL AS rebuilt;  -- dz's chats left with their tables
-- A detached partition keeps those triggers (DETACH drops only the cloned
-- row triggers); there they do nothing: its rows are no chats of the CRM.
-- Attached again, it is counted again.
ALTER TABLE "VC Usage" DETACH PARTITION chats_recent;
INSERT INTO chats_recent (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's12', '2026-11-01');
DELETE FROM chats_recent WHERE session_id = 's10';
SELECT m.total_conversations, m.total_sessions
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id WHERE c.customer_email = 'cy@example.com';
SELECT count(*) AS unlinked_in_detached FROM chats_recent WHERE customer_id IS NULL;
DELETE FROM chats_recent;
SELECT crm_native.rebuild_metrics() IS NOT NULL AS rebuilt;  -- the detached chats left "VC Usage"
ALTER TABLE "VC Usage" ATTACH PARTITION chats_recent DEFAULT;
INSERT INTO chats_recent (company_id, customer_email, session_id, created_at)
  VALUES ('11111111-1111-1111-1111-111111111111', 'cy@example.com', 's13', '2026-12-01');
SELECT m.total_conversations, m.total_sessions
  FROM customers c JOIN customer_metrics m ON m.customer_id = c.id WHERE c.customer_email = 'cy@example.com';
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- Still not counted: a statement naming a table that "VC Usage" is itself a
-- partition of fires no statement trigger of "VC Usage" or of its partitions
-- (docs/metrics.md, "Partitions"). The chat is linked; verify_metrics() finds
-- the difference, rebuild_metrics() repairs it.
INSERT INTO shared.all_chats (id, company_id, customer_email, session_id, created_at)
  VALUES (nextval('"VC Usage_id_seq"'), '11111111-1111-1111-1111-111111111111', 'cy@example.com', 's14', '2026-12-02');
SELECT customer_id IS NOT NULL AS linked FROM "VC Usage" WHERE session_id = 's14';
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
SELECT crm_native.rebuild_metrics() IS NOT NULL AS rebuilt;
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
-- A partition trigger declared without its argument (made by hand) counts
-- as not installed: verify_schema() says so, install() creates it again.
DROP TRIGGER trg_vc_usage_metrics_refresh_ins ON chats_recent;
CREATE TRIGGER trg_vc_usage_metrics_refresh_ins AFTER INSERT ON chats_recent REFERENCING NEW TABLE AS crm_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_native.metrics_insert();
SELECT object, status, detail FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok';
SELECT count(*) > 0 AS installed FROM crm_native.install();
SELECT count(*) AS trigger_problems FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok';
-- "VC Usage", itself a partition of shared.all_chats, renamed after
-- install(): uninstall() refuses, changing nothing (it skipped partitions,
-- and forgot the application's triggers; found by an independent review)
ALTER TABLE "VC Usage" RENAME TO vc_usage_renamed;
\set SHOW_CONTEXT never
SELECT count(*) FROM crm_native.uninstall();
\set SHOW_CONTEXT errors
ALTER TABLE vc_usage_renamed RENAME TO "VC Usage";
ALTER TABLE shared.all_chats DETACH PARTITION "VC Usage";
DROP TABLE shared.all_chats;

-- customers partitioned by hash of id, one partition in schema archive: the
-- customers triggers fire on the partitions; the audit rows still name the
-- table 'customers' (the contract's table_name), as plpgsql's do.
-- Detached, a partition keeps its triggers: verify_schema() lists them,
-- uninstall() drops them with the rest; so for the partitions of a
-- detached sub-partitioned partition, which are still partitions (of it).
ALTER TABLE "VC Usage" DETACH PARTITION chats_recent;
ALTER TABLE "VC Usage" DETACH PARTITION archive.chats_2023;
SELECT object, status FROM crm_native.verify_schema() WHERE kind = 'trigger' AND status <> 'ok' ORDER BY 1;
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall();
-- uninstall() drops the partitions' triggers too; and with no native
-- trigger on "VC Usage", a partition attached now gets none.
SELECT count(*) AS native_triggers_left FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = 'crm_native'::regnamespace;
ALTER TABLE "VC Usage" ATTACH PARTITION chats_recent DEFAULT;
SELECT count(*) AS native_triggers_left FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = 'crm_native'::regnamespace;
TRUNCATE customers, "VC Usage", customer_audit_log, customer_matching_keys, customer_events, customer_metrics CASCADE;
ALTER TABLE customers RENAME TO customers_flat;
CREATE TABLE customers (LIKE customers_flat INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY HASH (id);
ALTER TABLE customers ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (company_id) REFERENCES companies (id),
    ADD FOREIGN KEY (merged_into_customer_id) REFERENCES customers (id);
CREATE INDEX ON customers (company_id);
CREATE TABLE archive.customers_h0 PARTITION OF customers FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE customers_h1 PARTITION OF customers FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s', conrelid::regclass, conname, conname,
              replace(pg_get_constraintdef(oid), 'REFERENCES customers_flat(', 'REFERENCES customers('))
  FROM pg_constraint
 WHERE contype = 'f' AND confrelid = 'customers_flat'::regclass AND conrelid <> 'customers_flat'::regclass
   AND conparentid = 0 \gexec
CREATE TRIGGER trg_customers_audit_log AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION log_customer_changes();
CREATE TRIGGER trg_customers_lifecycle_tracking BEFORE UPDATE ON customers
    FOR EACH ROW WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage) EXECUTE FUNCTION track_lifecycle_changes();
CREATE TRIGGER trg_customers_matching_keys_sync AFTER INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION sync_customer_matching_keys();
DROP TABLE customers_flat;
SELECT count(*) AS native_triggers FROM crm_native.install() WHERE implementation = 'native';
INSERT INTO "VC Usage" (company_id, customer_email, customer_phone, session_id, created_at)
  SELECT '11111111-1111-1111-1111-111111111111', 'c' || i || '@example.com', '+1 212 555 01' || lpad(i::text, 2, '0'),
         's' || i, '2026-01-01'::timestamptz + i * interval '1 day'
    FROM generate_series(1, 40) i;
UPDATE customers SET lifecycle_stage = 'lead' WHERE customer_email IN ('c1@example.com', 'c2@example.com');
SELECT n.nspname AS partition_schema, count(*) > 0 AS has_customers
  FROM customers c JOIN pg_class p ON p.oid = c.tableoid JOIN pg_namespace n ON n.oid = p.relnamespace
 GROUP BY 1 ORDER BY 1;
SELECT table_name, operation, count(*) FROM customer_audit_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT key_type, count(*) FROM customer_matching_keys GROUP BY 1 ORDER BY 1;
SELECT event_type, count(*) FROM customer_events GROUP BY 1 ORDER BY 1;
SELECT count(*) = 0 AS metrics_agree FROM crm_native.verify_metrics();

-- The event trigger runs at the end of every CREATE TABLE and ALTER TABLE.
-- On a table outside the trees install() attached to, it does not even load
-- the library (it did: 35-40 ms on the first CREATE TEMP TABLE of each
-- connection); on a partition of "VC Usage" it does (the control).
\c
CREATE TEMP TABLE scratch (a int);
ALTER TABLE scratch ADD COLUMN b int;
-- (a server that preloads the library, as the memory check's does, has it
-- loaded anyway)
SELECT pg_read_file('/proc/' || pg_backend_pid() || '/maps') NOT LIKE '%/crm_native.so%'
       OR current_setting('shared_preload_libraries') LIKE '%crm_native%' AS library_not_loaded;
\c
ALTER TABLE chats_recent SET (fillfactor = 90);
SELECT pg_read_file('/proc/' || pg_backend_pid() || '/maps') LIKE '%/crm_native.so%' AS library_loaded;

-- A connection that sees partitions created and dropped keeps nothing of
-- them: the caches keyed by relation forget a dropped one at the next
-- trigger call (it kept about 90 kB of plans for each; independent review).
-- Counted without a clock: the kept plans of this connection after 5 and
-- after 15 partitions came and went, each in a transaction of its own.
CREATE FUNCTION pg_temp.partition_round(i int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE rotating_%s PARTITION OF "VC Usage" FOR VALUES FROM (%L) TO (%L)', i,
                   make_date(2000 + i, 1, 1), make_date(2001 + i, 1, 1));
    INSERT INTO "VC Usage" (company_id, customer_email, session_id, created_at)
      VALUES ('11111111-1111-1111-1111-111111111111', 'rot' || i || '@example.com', 'r' || i, make_date(2000 + i, 6, 1));
    UPDATE "VC Usage" SET view_count = view_count + 1 WHERE session_id = 'r' || i;
    DELETE FROM "VC Usage" WHERE session_id = 'r' || i;
    EXECUTE format('DROP TABLE rotating_%s', i);
END $$;
CREATE TEMP TABLE kept_plans (after_rounds int, plans bigint);
\set ECHO none
SELECT format('DO $$BEGIN PERFORM pg_temp.partition_round(%s); END$$', i) FROM generate_series(1, 5) i \gexec
\set ECHO all
INSERT INTO kept_plans SELECT 5, count(*) FROM pg_backend_memory_contexts WHERE name = 'CachedPlanSource';
\set ECHO none
SELECT format('DO $$BEGIN PERFORM pg_temp.partition_round(%s); END$$', i) FROM generate_series(6, 15) i \gexec
\set ECHO all
INSERT INTO kept_plans SELECT 15, count(*) FROM pg_backend_memory_contexts WHERE name = 'CachedPlanSource';
-- (each dropped partition kept several plans: 10 more rounds kept dozens;
-- a few are allowed for what else a connection may plan once, such as a
-- path of the event trigger's PL/pgSQL first taken in a later round: CI
-- once counted more after 15 rounds than after 5, never reproduced)
SELECT max(plans) FILTER (WHERE after_rounds = 15) <= max(plans) FILTER (WHERE after_rounds = 5) + 4 AS plans_not_kept
  FROM kept_plans;
-- A partition detached before its parent was dropped keeps its metrics
-- triggers: uninstall() drops them (as left by DETACH), and does not take
-- it for the chat table renamed (found by an independent review).
CREATE TABLE chats_1990 PARTITION OF "VC Usage" FOR VALUES FROM ('1990-01-01') TO ('1991-01-01');
ALTER TABLE "VC Usage" DETACH PARTITION chats_1990;
DROP TABLE "VC Usage" CASCADE;
SET client_min_messages = error;
SELECT count(*) AS customers_triggers FROM crm_native.uninstall();
RESET client_min_messages;
SELECT count(*) AS native_triggers_left FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = 'crm_native'::regnamespace;

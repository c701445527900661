-- What install() requires of the chat table beyond its columns' types, each
-- found by an independent tester on a schema the suites did not cover:
-- a NOT NULL company_id, a unique id, no inheritance children; and how it
-- treats generated columns the sync reads and domains on customer_metrics.
-- Each requirement is refused by install() with its reason, reported by
-- verify_schema() with the fix, and accepted once fixed.
SET client_min_messages = warning;
\set VERBOSITY terse
INSERT INTO companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'A');

-- 1. A nullable company_id: chats without a company were stored unlinked
--    (plpgsql failed them), and could name any company's customer.
ALTER TABLE "VC Usage" ALTER COLUMN company_id DROP NOT NULL;
SELECT count(*) FROM crm_native.install();
SELECT object, kind, status, detail, fix FROM crm_native.verify_schema() WHERE kind = 'column' AND status <> 'ok';
-- what only reads the schema still works (a schema updated from 0.7.0 keeps
-- its search while the fix waits)
SELECT count(*) AS found FROM crm_native.search_customers('11111111-1111-1111-1111-111111111111', 'nobody@example.com');
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
ALTER TABLE "VC Usage" ALTER COLUMN company_id SET NOT NULL;

-- 2. No unique id: the metrics triggers pair an updated chat's old and new
--    versions by id (two chats with id 1 counted each other's views).
ALTER TABLE "VC Usage" DROP CONSTRAINT "VC Usage_pkey";
SELECT count(*) FROM crm_native.install();
SELECT object, kind, status, detail, fix FROM crm_native.verify_schema() WHERE kind = 'column' AND status <> 'ok';
-- none of these makes id unique: a predicate, id only INCLUDEd, another
-- column besides it (with (id, session_id) two chats may share an id), a
-- DEFERRABLE key
CREATE UNIQUE INDEX vc_usage_id_partial ON "VC Usage" (id) WHERE customer_id IS NOT NULL;
CREATE UNIQUE INDEX vc_usage_session_incl_id ON "VC Usage" (session_id) INCLUDE (id);
CREATE UNIQUE INDEX vc_usage_id_session ON "VC Usage" (id, session_id);
ALTER TABLE "VC Usage" ADD CONSTRAINT vc_usage_id_deferred UNIQUE (id) DEFERRABLE;
SELECT cardinality(crm_native.missing_objects()) AS problems;
-- (id, company_id) is accepted: a Citus table's key must include company_id
-- (and a partitioned table's its partition key); the ids must still be unique
CREATE UNIQUE INDEX vc_usage_id_company ON "VC Usage" (id, company_id);
SELECT cardinality(crm_native.missing_objects()) AS problems;
DROP INDEX vc_usage_id_partial, vc_usage_session_incl_id, vc_usage_id_session, vc_usage_id_company;
ALTER TABLE "VC Usage" DROP CONSTRAINT vc_usage_id_deferred;
ALTER TABLE "VC Usage" ADD PRIMARY KEY (id);

-- 3. A plain inheritance child: its rows fire none of the chat table's
--    triggers, yet a DELETE through the chat table took them out of the
--    metrics (which went negative).
CREATE TABLE vc_archive () INHERITS ("VC Usage");
SELECT count(*) FROM crm_native.install();
SELECT object, kind, status, detail, fix FROM crm_native.verify_schema() WHERE kind = 'column' AND status <> 'ok';
ALTER TABLE vc_archive NO INHERIT "VC Usage";
SELECT count(*) > 0 AS installed FROM crm_native.install();
-- one added after install() is reported (health() counts it as an error)
ALTER TABLE vc_archive INHERIT "VC Usage";
SELECT object, status FROM crm_native.verify_schema() WHERE kind = 'column' AND status <> 'ok';
SELECT status FROM crm_native.health(metrics_sample => NULL) WHERE check_name = 'schema: columns the native triggers use';
ALTER TABLE vc_archive NO INHERIT "VC Usage";

-- 4. A generated contact column: in a BEFORE trigger it has no value yet,
--    and NEW of an UPDATE still holds the old one. The sync reads it as
--    NULL, as the plpgsql trigger saw it (it used to read the old value:
--    a customer got an email the chat no longer had, and a chat was linked
--    to a new customer named after its old email).
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall();
ALTER TABLE "VC Usage" RENAME customer_email TO raw_email;
ALTER TABLE "VC Usage" ADD COLUMN customer_email text GENERATED ALWAYS AS (lower(raw_email)) STORED;
SET client_min_messages = warning;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO "VC Usage" (company_id, customer_name, raw_email, session_id)
  VALUES ('11111111-1111-1111-1111-111111111111', 'Ann', 'Ann@X.com', 'g1');
INSERT INTO "VC Usage" (company_id, raw_email, session_id)
  VALUES ('11111111-1111-1111-1111-111111111111', 'bob@x.com', 'g2');
UPDATE "VC Usage" SET raw_email = 'new@x.com';
SELECT customer_name, customer_email FROM customers ORDER BY 1;
SELECT session_id, customer_email, customer_id IS NOT NULL AS linked FROM "VC Usage" ORDER BY 1;
SELECT event_type, count(*) FROM customer_events GROUP BY 1 ORDER BY 1;
SELECT count(*) > 0 AS uninstalled FROM crm_native.uninstall();
ALTER TABLE "VC Usage" DROP COLUMN customer_email;
ALTER TABLE "VC Usage" RENAME raw_email TO customer_email;

-- 5. Domains over the metrics' types: verify_metrics() compares and
--    returns them as their base types (it failed with "structure of query
--    does not match function result type").
CREATE DOMAIN view_counter AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN interaction_time AS timestamptz CHECK (VALUE > '2000-01-01');
ALTER TABLE customer_metrics ALTER COLUMN total_views TYPE view_counter,
                             ALTER COLUMN first_interaction_at TYPE interaction_time;
SELECT count(*) > 0 AS installed FROM crm_native.install();
INSERT INTO "VC Usage" (company_id, customer_email, session_id, view_count)
  VALUES ('11111111-1111-1111-1111-111111111111', 'dee@x.com', 'd1', 3);
SELECT count(*) AS metrics_differ FROM crm_native.verify_metrics();
UPDATE customer_metrics SET total_views = 7
 WHERE customer_id = (SELECT id FROM customers WHERE customer_email = 'dee@x.com');
SELECT expected_views, actual_views FROM crm_native.verify_metrics();

-- 6. A chat column renamed after install(): a statement that changes no
--    chat runs no metrics statement (the plpgsql row trigger did not
--    fire); one that does fails with an error that names the column (it
--    named the SQL of the metrics statements: "column n.view_count does not
--    exist at character 547").
ALTER TABLE "VC Usage" RENAME view_count TO views;
UPDATE "VC Usage" SET user_message = 'none' WHERE false;
UPDATE "VC Usage" SET user_message = 'one' WHERE session_id = 'd1';
ALTER TABLE "VC Usage" RENAME views TO view_count;
UPDATE "VC Usage" SET user_message = 'one' WHERE session_id = 'd1';
SELECT user_message FROM "VC Usage" WHERE session_id = 'd1';

-- Schema variants of the reference CRM schema (test/run.d/schema_variants.sh,
-- test/run.d/import_cost.sh). An application's schema is never exactly the
-- reference one: it adds indexes, defers its foreign keys, adds its own
-- triggers, never analyzes, runs as the RLS-bound role. Each variant is
-- applied identically to a plpgsql and a native database (before
-- crm_native.install(), as an application's schema is when the extension is
-- installed). Everything is generated from the catalogs, never hand-listed,
-- so a table or foreign key added to reference/01_schema.sql is covered too.
--
--   schema_variant.apply(variant)  runs the variant's DDL, returns each statement
--   schema_variant.fk_orphans()    every foreign key of the CRM tables with its
--                                  count of referencing rows that have a
--                                  non-null key and no referenced row
--   schema_variant.has_merge_sources(customer)   for the crm_app workload
SET client_min_messages = warning;
CREATE SCHEMA schema_variant;
GRANT USAGE ON SCHEMA schema_variant TO PUBLIC;

-- The CRM tables: every table of schema public (reference/01_schema.sql),
-- partitions not counted (variant partitioned).
CREATE FUNCTION schema_variant.crm_tables() RETURNS SETOF regclass LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
     ORDER BY c.relname COLLATE "C"
$$;

-- Every foreign key of the CRM tables, with its columns (any arity).
CREATE FUNCTION schema_variant.crm_fks()
    RETURNS TABLE (oid oid, conname name, conrelid regclass, confrelid regclass,
                   cols text[], refcols text[])
    LANGUAGE sql STABLE AS $$
    SELECT k.oid, k.conname, k.conrelid::regclass, k.confrelid::regclass,
           (SELECT array_agg(quote_ident(a.attname) ORDER BY u.ord)
              FROM unnest(k.conkey) WITH ORDINALITY u (attnum, ord)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum),
           (SELECT array_agg(quote_ident(a.attname) ORDER BY u.ord)
              FROM unnest(k.confkey) WITH ORDINALITY u (attnum, ord)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum)
      FROM pg_catalog.pg_constraint k
     WHERE k.contype = 'f' AND k.conrelid IN (SELECT schema_variant.crm_tables())
       AND k.conparentid = 0   -- not the copies PostgreSQL keeps per partition
     ORDER BY k.conrelid::regclass::text COLLATE "C", k.conname COLLATE "C"
$$;

-- The CREATE POLICY statements of p_table's row-level security policies, for
-- the table named p_target.
CREATE FUNCTION schema_variant.policies(p_table regclass, p_target text) RETURNS TABLE (policyname name, ddl text)
    LANGUAGE sql STABLE AS $$
    SELECT p.policyname,
           format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.policyname, p_target, p.permissive, p.cmd,
                  (SELECT string_agg(CASE WHEN g = 'public' THEN g ELSE quote_ident(g) END, ', ') FROM unnest(p.roles) g),
                  CASE WHEN p.qual IS NOT NULL THEN ' USING (' || p.qual || ')' ELSE '' END,
                  CASE WHEN p.with_check IS NOT NULL THEN ' WITH CHECK (' || p.with_check || ')' ELSE '' END)
      FROM pg_catalog.pg_policies p
     WHERE format('%I.%I', p.schemaname, p.tablename)::regclass = p_table
     ORDER BY p.policyname
$$;

-- (f) Turns an empty table into a partitioned table of the same name with
-- the same columns, defaults, checks, primary key (plus the partition key's
-- columns, as PostgreSQL requires), foreign keys, indexes, triggers,
-- row-level security and privileges, all read from the catalogs, and
-- creates its partitions (p_partitions: "name bound", the name without
-- spaces, e.g.
-- 'crm_parts.early FOR VALUES FROM (MINVALUE) TO (...)'). The old table is
-- dropped; its id sequence moves to the new one.
CREATE FUNCTION schema_variant.partition_table(p_table regclass, p_key text, p_by text, p_partitions text[])
    RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    nsp      text := (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.oid = p_table);
    name     text := (SELECT relname FROM pg_catalog.pg_class WHERE oid = p_table);
    qname    text := format('%I.%I', nsp, name);
    oldq     text := format('%I.%I', nsp, name || '_unpartitioned');
    oldrel   regclass;
    later    text[] := '{}';
    ddl      text;
    pk       text;
    r        record;
BEGIN
    EXECUTE format('ALTER TABLE %s RENAME TO %I', qname, name || '_unpartitioned');
    oldrel := oldq::regclass;
    ddl := format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED'
                  ' INCLUDING STORAGE) PARTITION BY %s', qname, oldq, p_by);
    EXECUTE ddl;
    RETURN NEXT ddl;
    -- the primary key, with the partition key's columns added
    SELECT format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (%s)', qname, k.conname,
                  string_agg(quote_ident(a.attname), ', ' ORDER BY u.ord))
      INTO pk
      FROM pg_catalog.pg_constraint k
      CROSS JOIN LATERAL unnest(k.conkey || (SELECT array_agg(x.attnum) FROM pg_catalog.pg_attribute x
                                              WHERE x.attrelid = oldrel AND x.attname = p_key
                                                AND NOT x.attnum = ANY (k.conkey))) WITH ORDINALITY u (attnum, ord)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = oldrel AND a.attnum = u.attnum
     WHERE k.conrelid = oldrel AND k.contype = 'p'
     GROUP BY k.conname;
    IF pk IS NOT NULL THEN later := later || pk; END IF;
    -- foreign keys from it, and to it from other tables (dropped before the
    -- old table is, added back to the new one); a reference to the old
    -- table (itself, or from another table) names the new one
    FOR r IN SELECT k.conname, k.conrelid, pg_catalog.pg_get_constraintdef(k.oid) AS def
               FROM pg_catalog.pg_constraint k
              WHERE k.contype = 'f' AND (k.conrelid = oldrel OR k.confrelid = oldrel)
                AND k.conparentid = 0   -- a partition's copy goes with its parent's
              ORDER BY k.conrelid <> oldrel, k.conname LOOP
        IF r.conrelid <> oldrel THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.conrelid::regclass, r.conname);
        END IF;
        later := later || format('ALTER TABLE %s ADD CONSTRAINT %I %s',
                                 CASE WHEN r.conrelid = oldrel THEN qname ELSE r.conrelid::regclass::text END, r.conname,
                                 replace(replace(r.def, ' REFERENCES ' || oldq || '(', ' REFERENCES ' || qname || '('),
                                         ' REFERENCES ' || quote_ident(name || '_unpartitioned') || '(',
                                         ' REFERENCES ' || qname || '('));
    END LOOP;
    FOR r IN SELECT pg_catalog.pg_get_indexdef(i.indexrelid) AS def FROM pg_catalog.pg_index i
              WHERE i.indrelid = oldrel
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)
              ORDER BY i.indexrelid LOOP
        later := later || replace(r.def, ' ON ' || oldq || ' USING ', ' ON ' || qname || ' USING ');
    END LOOP;
    FOR r IN SELECT pg_catalog.pg_get_triggerdef(t.oid) AS def, t.tgenabled FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = oldrel AND NOT t.tgisinternal ORDER BY t.tgname LOOP
        later := later || replace(r.def, ' ON ' || oldq || ' ', ' ON ' || qname || ' ');
    END LOOP;
    IF (SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = oldrel) THEN
        later := later || format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', qname);
    END IF;
    IF (SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = oldrel) THEN
        later := later || format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', qname);
    END IF;
    later := later || ARRAY(SELECT p.ddl FROM schema_variant.policies(oldrel, qname) p);
    FOR r IN SELECT a.privilege_type, g.rolname FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
               JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
              WHERE c.oid = oldrel AND a.grantee <> c.relowner ORDER BY 2, 1 LOOP
        later := later || format('GRANT %s ON %s TO %I', r.privilege_type, qname, r.rolname);
    END LOOP;
    -- the sequences the old table owns (bigserial ids) survive the drop
    FOR r IN SELECT d.objid::regclass AS seq, a.attname
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = oldrel AND d.deptype = 'a'
                AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S' LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNED BY NONE', r.seq);
        later := later || format('ALTER SEQUENCE %s OWNED BY %s.%I', r.seq, qname, r.attname);
    END LOOP;
    EXECUTE format('DROP TABLE %s', oldq);
    FOREACH ddl IN ARRAY later LOOP
        EXECUTE ddl;
        RETURN NEXT ddl;
    END LOOP;
    FOREACH ddl IN ARRAY p_partitions LOOP
        ddl := format('CREATE TABLE %s PARTITION OF %s %s', split_part(ddl, ' ', 1), qname,
                      substr(ddl, length(split_part(ddl, ' ', 1)) + 2));
        EXECUTE ddl;
        RETURN NEXT ddl;
    END LOOP;
END;
$$;

-- (g) ALTER TABLE p_table p_alter, with the table's triggers and row-level
-- security policies dropped first and re-created after (PostgreSQL refuses to
-- change the type of a column a trigger's UPDATE OF list or a policy names).
CREATE FUNCTION schema_variant.alter_keeping(p_table regclass, p_alter text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    again text[] := '{}';
    r     record;
    ddl   text;
    stmt  text;
BEGIN
    FOR r IN SELECT t.tgname, pg_catalog.pg_get_triggerdef(t.oid) AS def FROM pg_catalog.pg_trigger t
              WHERE t.tgrelid = p_table AND NOT t.tgisinternal ORDER BY t.tgname LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, p_table);
        again := again || r.def;
    END LOOP;
    FOR r IN SELECT * FROM schema_variant.policies(p_table, p_table::text) LOOP
        EXECUTE format('DROP POLICY %I ON %s', r.policyname, p_table);
        again := again || r.ddl;
    END LOOP;
    ddl := format('ALTER TABLE %s %s', p_table, p_alter);
    EXECUTE ddl;
    FOREACH stmt IN ARRAY again LOOP
        EXECUTE stmt;
    END LOOP;
    RETURN ddl;
END;
$$;

CREATE FUNCTION schema_variant.apply(p_variant text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    fk  record;
    t   regclass;
    col text;
    ddl text;
BEGIN
    CASE p_variant
    WHEN 'plain' THEN
        RETURN;
    WHEN 'fk_indexes' THEN
        -- (a) extra indexes. One more single-column index on every foreign-key column, even
        -- where the reference schema already has one (customers(company_id)
        -- has customers_company_id_fkey: this adds a second, as a schema
        -- that indexes its foreign keys by rule would).
        FOR fk IN SELECT * FROM schema_variant.crm_fks() LOOP
            FOREACH col IN ARRAY fk.cols LOOP
                ddl := format('CREATE INDEX %I ON %s (%s)',
                              left('sv_' || fk.conname || '_' || replace(col, '"', ''), 63), fk.conrelid, col);
                EXECUTE ddl;
                RETURN NEXT ddl;
            END LOOP;
        END LOOP;
        -- and on customers(company_id), should it ever stop being a foreign key
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                        WHERE i.indrelid = 'public.customers'::regclass
                          AND i.indexrelid::regclass::text LIKE 'sv\_%'
                          AND i.indkey::text = (SELECT attnum::text FROM pg_catalog.pg_attribute
                                                 WHERE attrelid = 'public.customers'::regclass
                                                   AND attname = 'company_id')) THEN
            ddl := 'CREATE INDEX sv_customers_company_id ON public.customers (company_id)';
            EXECUTE ddl;
            RETURN NEXT ddl;
        END IF;
        -- and partial indexes an application adds for its own lists, whose
        -- predicates are conditions the triggers' statements also test: on
        -- an empty table a full scan of such an index costs as little as the
        -- primary key, so a statement whose condition lets the planner prove
        -- the predicate could walk every unmerged customer instead
        FOREACH ddl IN ARRAY ARRAY[
            'CREATE INDEX sv_customers_unmerged ON public.customers (company_id) WHERE merged_into_customer_id IS NULL',
            'CREATE INDEX sv_customers_live_created ON public.customers (created_at) WHERE deleted_at IS NULL',
            'CREATE INDEX sv_vc_usage_unlinked ON public."VC Usage" (company_id) WHERE customer_id IS NULL',
            'CREATE INDEX sv_vc_usage_linked_session ON public."VC Usage" (customer_id, created_at) WHERE session_id IS NOT NULL'] LOOP
            EXECUTE ddl;
            RETURN NEXT ddl;
        END LOOP;
    WHEN 'deferred_fks' THEN
        -- (b) every foreign key checked at commit
        FOR fk IN SELECT * FROM schema_variant.crm_fks() LOOP
            ddl := format('ALTER TABLE %s ALTER CONSTRAINT %I DEFERRABLE INITIALLY DEFERRED', fk.conrelid, fk.conname);
            EXECUTE ddl;
            RETURN NEXT ddl;
        END LOOP;
    WHEN 'app_triggers' THEN
        -- (c) the application's own triggers on customers, beside the
        -- replaced ones. Their names sort before trg_*, so they fire first:
        -- the BEFORE one before lifecycle tracking, the AFTER one (a nested
        -- chat insert, whose sync may create another customer) before the
        -- customer's own audit row and matching keys.
        ddl := $ddl$
CREATE FUNCTION public.app_customer_welcome_chat() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF NEW.customer_email IS NOT NULL AND btrim(NEW.customer_email) NOT ILIKE 'welcome+%' THEN
        INSERT INTO public."VC Usage" (company_id, customer_email, user_message)
        VALUES (NEW.company_id, 'welcome+' || btrim(NEW.customer_email), 'welcome!');
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER customers_app_welcome_chat AFTER INSERT ON public.customers
    FOR EACH ROW EXECUTE FUNCTION public.app_customer_welcome_chat();
CREATE FUNCTION public.app_customer_tidy() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF NEW.tags IS NULL OR NOT ('app' = ANY (NEW.tags)) THEN
        NEW.tags := coalesce(NEW.tags, '{}') || 'app'::text;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.customer_email IS DISTINCT FROM OLD.customer_email THEN
        NEW.customer_notes := coalesce(NEW.customer_notes, '') || ' (email was ' || coalesce(OLD.customer_email, 'unset') || ')  ';
    END IF;
    NEW.customer_notes := NULLIF(btrim(NEW.customer_notes), '');
    NEW.customer_name := btrim(NEW.customer_name);
    RETURN NEW;
END $f$;
CREATE TRIGGER customers_app_tidy BEFORE INSERT OR UPDATE ON public.customers
    FOR EACH ROW EXECUTE FUNCTION public.app_customer_tidy();
$ddl$;
        EXECUTE ddl;
        RETURN NEXT 'CREATE TRIGGER customers_app_welcome_chat AFTER INSERT (a welcome chat), customers_app_tidy BEFORE INSERT OR UPDATE (tag, notes, name)';
    WHEN 'never_analyzed' THEN
        -- (d) no autovacuum/autoanalyze on the CRM tables (and no ANALYZE
        -- anywhere in the tests that use this variant)
        FOR t IN SELECT * FROM schema_variant.crm_tables() LOOP
            ddl := format('ALTER TABLE %s SET (autovacuum_enabled = off)', t);
            EXECUTE ddl;
            RETURN NEXT ddl;
        END LOOP;
    WHEN 'partitioned', 'partition_writes' THEN
        -- (f) the chat table and every table the triggers write to
        -- partitioned as an application at scale would: chats by time, the
        -- audit trail by id (its rows are dated now(), which the workload
        -- cannot split), events and keys by tenant, metrics and customers
        -- by hash (customers last: every foreign key to it is re-created).
        -- One partition of each lives in another schema (crm_parts), where
        -- the triggers must not look for the CRM tables. The workload's chats are dated from
        -- 2024-01-01 00:00 in steps of 37 s, so both chat partitions fill.
        CREATE SCHEMA crm_parts;
        RETURN NEXT 'CREATE SCHEMA crm_parts';
        RETURN QUERY SELECT * FROM schema_variant.partition_table('public."VC Usage"', 'created_at', 'RANGE (created_at)',
            ARRAY['crm_parts.vc_usage_early FOR VALUES FROM (MINVALUE) TO (''2024-01-01 02:00:00+00'')',
                  'public.vc_usage_later DEFAULT']);
        RETURN QUERY SELECT * FROM schema_variant.partition_table('public.customer_audit_log', 'id', 'RANGE (id)',
            ARRAY['crm_parts.customer_audit_log_first FOR VALUES FROM (MINVALUE) TO (200)',
                  'public.customer_audit_log_later DEFAULT']);
        RETURN QUERY SELECT * FROM schema_variant.partition_table('public.customer_events', 'company_id', 'LIST (company_id)',
            ARRAY['crm_parts.customer_events_a FOR VALUES IN (''aaaaaaaa-0000-4000-8000-00000000000a'')',
                  'public.customer_events_other DEFAULT']);
        RETURN QUERY SELECT * FROM schema_variant.partition_table('public.customer_matching_keys', 'company_id', 'LIST (company_id)',
            ARRAY['crm_parts.customer_matching_keys_b FOR VALUES IN (''bbbbbbbb-0000-4000-8000-00000000000b'')',
                  'public.customer_matching_keys_other DEFAULT']);
        RETURN QUERY SELECT * FROM schema_variant.partition_table('public.customer_metrics', 'customer_id', 'HASH (customer_id)',
            ARRAY['crm_parts.customer_metrics_h0 FOR VALUES WITH (MODULUS 2, REMAINDER 0)',
                  'public.customer_metrics_h1 FOR VALUES WITH (MODULUS 2, REMAINDER 1)']);
        RETURN QUERY SELECT * FROM schema_variant.partition_table('public.customers', 'id', 'HASH (id)',
            ARRAY['crm_parts.customers_h0 FOR VALUES WITH (MODULUS 2, REMAINDER 0)',
                  'public.customers_h1 FOR VALUES WITH (MODULUS 2, REMAINDER 1)']);
    WHEN 'column_types' THEN
        -- (g) the application's own column types: citext contact columns
        -- (customers and chats), varchar with a length, and domains (with
        -- CHECK constraints) over uuid, text and integers on the columns the
        -- triggers read and write
        FOREACH ddl IN ARRAY ARRAY[
            'CREATE EXTENSION IF NOT EXISTS citext',
            'CREATE DOMAIN public.tenant_id AS uuid CHECK (VALUE IS NOT NULL)',
            'CREATE DOMAIN public.session_key AS text CHECK (length(VALUE) < 200)',
            'CREATE DOMAIN public.view_counter AS int4 CHECK (VALUE >= 0)',
            'CREATE DOMAIN public.match_value AS text'] LOOP
            EXECUTE ddl;
            RETURN NEXT ddl;
        END LOOP;
        RETURN NEXT schema_variant.alter_keeping('public.customers',
            'ALTER COLUMN customer_email TYPE citext, ALTER COLUMN customer_name TYPE varchar(200),'
            ' ALTER COLUMN customer_phone TYPE citext');
        RETURN NEXT schema_variant.alter_keeping('public."VC Usage"',
            'ALTER COLUMN customer_email TYPE citext, ALTER COLUMN company_id TYPE public.tenant_id,'
            ' ALTER COLUMN session_id TYPE public.session_key, ALTER COLUMN view_count TYPE public.view_counter');
        RETURN NEXT schema_variant.alter_keeping('public.customer_matching_keys',
            'ALTER COLUMN normalized_value TYPE public.match_value, ALTER COLUMN company_id TYPE public.tenant_id');
        RETURN NEXT schema_variant.alter_keeping('public.customer_metrics', 'ALTER COLUMN company_id TYPE public.tenant_id');
    WHEN 'uuid_chat_ids' THEN
        -- (h) chat ids of type uuid, random (not in insertion order), as an
        -- application with uuid primary keys everywhere has them
        RETURN NEXT schema_variant.alter_keeping('public."VC Usage"',
            'ALTER COLUMN id DROP DEFAULT, ALTER COLUMN id TYPE uuid USING gen_random_uuid(),'
            ' ALTER COLUMN id SET DEFAULT gen_random_uuid()');
    WHEN 'copy', 'savepoints', 'procedures', 'function_loop', 'multi_change' THEN
        -- delivery variants: the reference schema; test/differential/delivery.py
        -- rewrites how the workload delivers its changes
        RETURN;
    WHEN 'crm_app_rls' THEN
        -- (e) no DDL: the workload runs as crm_app (generator's p_app_only)
        RETURN;
    ELSE
        RAISE EXCEPTION 'unknown schema variant "%"', p_variant;
    END CASE;
END;
$$;

-- Whether a table has a row (partitioned variant: every partition is used).
CREATE FUNCTION schema_variant.has_rows(p_table regclass) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', p_table) INTO found;
    RETURN found;
END;
$$;

-- What the variant left in the catalogs, as one line (the scripts require it).
CREATE FUNCTION schema_variant.describe(p_variant text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE CASE p_variant WHEN 'partition_writes' THEN 'partitioned' ELSE p_variant END
        WHEN 'fk_indexes' THEN
            format('%1$s foreign keys, %2$s extra indexes (%4$s on customers(company_id)), %3$s partial',
                   (SELECT count(*) FROM schema_variant.crm_fks()),
                   (SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                     WHERE c.relname LIKE 'sv\_%' AND i.indpred IS NULL AND i.indrelid IN (SELECT schema_variant.crm_tables())),
                   (SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                     WHERE c.relname LIKE 'sv\_%' AND i.indpred IS NOT NULL AND i.indrelid IN (SELECT schema_variant.crm_tables())),
                   (SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                     WHERE i.indrelid = 'public.customers'::regclass AND i.indnatts = 1 AND i.indpred IS NULL
                       AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute
                                           WHERE attrelid = 'public.customers'::regclass AND attname = 'company_id')))
        WHEN 'deferred_fks' THEN
            format('%s foreign keys, %s deferrable initially deferred',
                   (SELECT count(*) FROM pg_catalog.pg_constraint
                     WHERE contype = 'f' AND conrelid IN (SELECT schema_variant.crm_tables())),
                   (SELECT count(*) FROM pg_catalog.pg_constraint
                     WHERE contype = 'f' AND conrelid IN (SELECT schema_variant.crm_tables())
                       AND condeferrable AND condeferred))
        WHEN 'app_triggers' THEN
            format('user triggers on customers: %s',
                   (SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_catalog.pg_trigger
                     WHERE tgrelid = 'public.customers'::regclass AND NOT tgisinternal))
        WHEN 'partitioned' THEN
            format('%s partitioned CRM tables, %s partitions with rows (%s of them in crm_parts)',
                   (SELECT count(*) FROM pg_catalog.pg_class c
                     WHERE c.oid IN (SELECT schema_variant.crm_tables()) AND c.relkind = 'p'),
                   (SELECT count(*) FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent IN (SELECT schema_variant.crm_tables()) AND c.relkind = 'r'
                       AND schema_variant.has_rows(c.oid)),
                   (SELECT count(*) FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent IN (SELECT schema_variant.crm_tables()) AND c.relkind = 'r'
                       AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'crm_parts')
                       AND schema_variant.has_rows(c.oid)))
        WHEN 'column_types' THEN
            format('%s columns of the CRM tables with a domain or citext type',
                   (SELECT count(*) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                     WHERE a.attrelid IN (SELECT schema_variant.crm_tables()) AND a.attnum > 0 AND NOT a.attisdropped
                       AND (t.typtype = 'd' OR t.typname = 'citext')))
        WHEN 'uuid_chat_ids' THEN
            format('chat id %s, %s chats',
                   (SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = 'public."VC Usage"'::regclass AND a.attname = 'id'),
                   (SELECT count(*) FROM public."VC Usage"))
        WHEN 'never_analyzed' THEN
            format('%s CRM tables, %s with autovacuum off, %s ever analyzed or vacuumed',
                   (SELECT count(*) FROM schema_variant.crm_tables()),
                   (SELECT count(*) FROM pg_catalog.pg_class c
                     WHERE c.oid IN (SELECT schema_variant.crm_tables())
                       AND 'autovacuum_enabled=off' = ANY (c.reloptions)),
                   (SELECT count(*) FROM pg_catalog.pg_stat_all_tables s
                     WHERE s.relid IN (SELECT schema_variant.crm_tables())
                       AND (s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL
                            OR s.last_vacuum IS NOT NULL OR s.last_autovacuum IS NOT NULL
                            OR s.analyze_count + s.autoanalyze_count > 0)))
        ELSE p_variant END
$$;

-- Foreign-key orphans, counted by query (not trusting the constraints, which
-- a deferred, disabled or skipped check would not have enforced).
CREATE FUNCTION schema_variant.fk_orphans()
    RETURNS TABLE (conname name, conrelid regclass, orphans bigint) LANGUAGE plpgsql AS $$
DECLARE
    fk record;
BEGIN
    FOR fk IN SELECT * FROM schema_variant.crm_fks() LOOP
        conname := fk.conname;
        conrelid := fk.conrelid;
        EXECUTE format('SELECT count(*) FROM %s r WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)',
                       fk.conrelid,
                       (SELECT string_agg(format('r.%s IS NOT NULL', c), ' AND ') FROM unnest(fk.cols) c),
                       fk.confrelid,
                       (SELECT string_agg(format('p.%s = r.%s', rc, c), ' AND ')
                          FROM unnest(fk.refcols, fk.cols) u (rc, c)))
           INTO orphans;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- For the crm_app workload's hard delete: is any customer (soft-deleted ones
-- included, which crm_app cannot see) merged into p_customer?
CREATE FUNCTION schema_variant.has_merge_sources(p_customer uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT EXISTS (SELECT 1 FROM public.customers m WHERE m.merged_into_customer_id = p_customer)
$$;
GRANT EXECUTE ON FUNCTION schema_variant.has_merge_sources(uuid) TO PUBLIC;

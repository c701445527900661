-- crm_native.index_report() (src/sql/80_observe.sql): per index, size, scans
-- since the statistics reset, category (unused: 0 scans, low: 1-99, used:
-- 100 or more), unique/primary, overlap.
\set VERBOSITY terse
-- A fresh database has no scans: every index of the reference is unused,
-- none overlaps another, and unique/primary ones are kept.
SELECT count(*) AS indexes, count(*) FILTER (WHERE category = 'unused') AS unused,
       count(*) FILTER (WHERE overlaps_with IS NOT NULL) AS overlapping,
       count(*) FILTER (WHERE is_primary) AS primary_keys
  FROM crm_native.index_report();
SELECT table_name, index_name, category, is_unique, is_primary, suggestion
  FROM crm_native.index_report() WHERE table_name = 'customers' ORDER BY index_name;

-- 5 scans of one index, 150 of another (counted by the cumulative
-- statistics, flushed before they are read).
SET enable_seqscan = off;
SET enable_bitmapscan = off;
DO $$
BEGIN
    FOR i IN 1..5 LOOP
        PERFORM 1 FROM public.customer_merge_log WHERE source_customer_id = gen_random_uuid();
    END LOOP;
    FOR i IN 1..150 LOOP
        PERFORM 1 FROM public.customer_merge_log WHERE target_customer_id = gen_random_uuid();
    END LOOP;
END $$;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
SELECT index_name, scans, category, size_bytes > 0 AS has_size, size, suggestion
  FROM crm_native.index_report() WHERE table_name = 'customer_merge_log' ORDER BY index_name;

-- Overlap: an index whose key columns are a leading prefix of another's,
-- with the same predicate and access method. A primary key that overlaps is
-- still never proposed for dropping; a different predicate is no overlap.
CREATE INDEX customers_company_status_all ON public.customers (company_id, status);
CREATE UNIQUE INDEX customers_id_company ON public.customers (id, company_id);
CREATE INDEX merge_log_target_again ON public.customer_merge_log (target_customer_id);
SELECT table_name, index_name, overlaps_with, suggestion, definition
  FROM crm_native.index_report() WHERE overlaps_with IS NOT NULL ORDER BY table_name, index_name;

-- an unknown schema is an error
SELECT * FROM crm_native.index_report('no_such_schema');

// Index pins: each trigger statement names the index its scans were written
// for, and the planner considers only that index for those scans.
//
// Why: the triggers' plans are kept for the backend's life and are often made
// while the tables are empty, never analyzed, or with partial indexes never
// vacuumed. Then every index looks as cheap as the intended one. Under
// row-level security PostgreSQL adds the application's policy conditions
// (company_id = current_company_id(), deleted_at IS NULL) to every statement,
// and an index on the tenant, or a partial index those conditions match,
// could serve a customer's primary-key read by scanning the tenant. The
// statements cannot fence conditions PostgreSQL adds; a pin takes the other
// indexes out of the planner's choice.
//
// How: a statement's text starts with a comment
//     /* crm_native pins: c=id k=company_id,key_type,normalized_value */
// (an alias may name an index access method too, "n:gin=customer_name": only
// indexes of that method fit) meaning: a scan of a table the statement names (not one a row-level
// security policy's subquery reads) under the alias c considers only the indexes
// whose first key column is id; under k, only those whose first key column is
// company_id and whose key columns include key_type and normalized_value. A
// scan with no such index keeps every index (the application's schema
// decides, as before). A list that starts with no_seqscan also plans the
// statement with enable_seqscan and enable_bitmapscan off (the metrics
// statements), one that starts with no_seqscan_but_bitmap with
// enable_seqscan off only (search_customers: its name branch's GIN index
// serves only bitmap scans); while planning, not while running, so no trigger or policy the
// statement fires sees the settings; only a query planned during ours, such
// as one a function runs while the planner folds constants, would). The
// planner hook reads the comment of the statement
// being planned (a replan of a kept plan too); every other statement, and any
// query planned while ours is planned (a function's body), is untouched.
//
// What it cannot change: which rows a statement reads or writes. The
// conditions, row-level security, locks and constraint checks are the same
// whatever index serves a scan; only the order rows come in may differ, and
// no trigger statement depends on it (MetricsRecompute's company is the
// first chat's in scan order, as in the plpgsql refresh it mirrors).
//
// Which indexes fit: the first key column is the first one named, the key
// columns include the others, and the index is not partial, or only on
// "named column IS NOT NULL" (which the statements' equalities imply) or
// "column IS [NOT] NULL" that the statement's own WHERE clause states on the
// relation (a top-level condition, no outer join above it; for a partition,
// on the partitioned table the statement names). With
// no fitting index, the scan keeps every index (the schema decides, as for
// any statement; crm_native.verify_schema() names the indexes the triggers
// need). Tested without a clock by test/run.d/import_cost.sh (row-level
// security, extra indexes) and sql/index_pins.sql (plan shapes).
#pragma once

namespace crm::pg::index_pins {

// Installs the planner hooks (from _PG_init).
void install();

// True when `text` does not start with the pins comment, or starts with one
// that parses; false for one that does not (it would pin nothing). store.cpp
// refuses to prepare a statement whose pin list does not parse, so a syntax
// slip in store_sql.cpp fails every test that runs the statement. (A pin
// naming a column or alias the statement lacks parses and pins nothing;
// import_cost.sh's row-level security variants catch a pin that stopped
// working.)
bool well_formed(const char* text);

}  // namespace crm::pg::index_pins

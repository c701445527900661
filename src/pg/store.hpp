// The data-access layer of the native triggers: the one place that knows the
// CRM's tables. A trigger file reads its row, decides, and calls this layer to
// read or write; it never prepares a statement or checks a column itself.
//
//   columns     one list of the columns the triggers rely on and the types each
//               accepts (install() checks the same list: crm_native.required_column
//               is a view of it), and the lookups that enforce it;
//   protocol    the trigger calling-convention check every trigger runs first;
//   statements  every SQL statement a trigger runs (store_sql.cpp), one plan
//               cache keyed by (relation, statement, size class), one
//               templating scheme, and run() that checks each result;
//   writers     the rows written on behalf of a customer (matching keys,
//               events, audit rows), typed.
//
// Rules (docs/contract.md, "Security"): every statement names its tables with
// the schema of the table the trigger fires on and its functions and
// operators with pg_catalog, and takes values only as typed parameters, so a
// hostile search_path cannot redirect a read or a write. A plan is replaced
// exactly when its text would change (the schema or the table was renamed)
// or, for statements over transition tables, when the row type changed; the
// old plan is retired, never freed under a running outer call
// (retired_plans.hpp).
//
// C-style on purpose: everything here may ereport (longjmp), so no C++ object
// with a destructor lives in these frames.
#pragma once

// Backend headers of the trigger files, in one place: some of them (ilist.h,
// s_lock.h) do not compile cleanly as C++17 under -Wextra.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
}
#pragma GCC diagnostic pop

namespace crm::pg::store {

// ---------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------

// The CRM tables, by the part they play. Chats is the table the chat triggers
// fire on ("VC Usage" in the reference schema).
enum class Table : uint8 { Chats, Customers, MatchingKeys, Events, AuditLog, Metrics };

// The attribute number of `column` of `rel` (which plays `table`). It must
// exist with one of the types the column list accepts for it; otherwise a
// clear error names the trigger, the table, the column and the expected type.
AttrNumber require_column(const char* trigger, Relation rel, Table table, const char* column);

// The same lookup without the error: 0 when the column is missing or has a
// type the list does not accept (the caller then takes its general path).
AttrNumber optional_column(Relation rel, Table table, const char* column);

// The attribute number of `column` whatever its type (0 when missing): for a
// caller that reads the column only on some paths, and checks it with
// require_column() there.
AttrNumber column_number(Relation rel, const char* column);

// ---------------------------------------------------------------------------
// Trigger protocol
// ---------------------------------------------------------------------------

// What a trigger function must be declared as: one timing, one level, and the
// events it may fire on (bits, or-ed).
enum Fires : uint32 {
    kBefore = 1 << 0,
    kAfter = 1 << 1,
    kForEachRow = 1 << 2,
    kForEachStatement = 1 << 3,
    kOnInsert = 1 << 4,
    kOnUpdate = 1 << 5,
    kOnDelete = 1 << 6,
    kOnTruncate = 1 << 7,
    // May also be declared with the one argument 'partition': install()
    // attaches it so to each partition of its table, because PostgreSQL
    // clones row triggers onto partitions but not statement triggers, and a
    // statement trigger fires only for the table the statement names.
    kOnPartitions = 1 << 8,
};

// The TriggerData of a trigger call; raises a clear error (SQLSTATE 39P01)
// when the function was not called by the trigger manager or was declared
// other than `fires` says (e.g. kAfter | kForEachRow | kOnInsert | kOnUpdate).
TriggerData* trigger_call(FunctionCallInfo fcinfo, const char* trigger, uint32 fires);

// A cache keyed by relation registers `forget`, which removes the entries of
// the relations `gone` says no longer exist. trigger_call() runs every
// registered one after an invalidation, before the trigger does anything
// (store.cpp, "Forgetting dropped relations").
using ForgetDropped = void (*)(bool (*gone)(Oid relid));
void on_dropped_relations(ForgetDropped forget);
// What a forget function calls on a hash table whose key begins with a
// relation's OID: removes the entries of relations `gone` says no longer
// exist, after `release` (if given) released what each holds. True if it
// removed any.
bool forget_gone_entries(HTAB* map, bool (*gone)(Oid relid), void (*release)(void* entry) = nullptr);

// True for a trigger install() attached to a partition (kOnPartitions) whose
// table is no longer a partition below a table with the same trigger
// function attached without arguments (DETACH PARTITION keeps the trigger):
// its rows are no CRM chats, and the trigger does nothing.
bool detached_from_home(const TriggerData* data);

// ---------------------------------------------------------------------------
// Statements (texts in store_sql.cpp)
// ---------------------------------------------------------------------------

enum class Statement : uint16 {
    // customer_sync.cpp: chat -> customer
    SyncLookupEmail,         // live holders of an email key, oldest first
    SyncLookupPhone,
    SyncLookupName,
    SyncLookupEmailOrPhone,  // both keys, email holders first
    SyncProbe,               // who holds the email / phone key
    SyncChain,               // one merge hop, by primary key
    SyncFillContact,         // fill missing email/phone
    SyncContactEvent,        // its 'contact_info_added' event
    SyncLockMatch,           // lock the match when nothing is filled
    SyncLockHolder,          // lock the probe's single holder when it is the match
    SyncCreateCustomer,      // a new customer
    SyncCreatedEvent,        // its 'created' event
    SyncLinkedCustomer,      // is a named customer a live customer of the company?
    SyncMatchVisible,        // the match's conditions without the lock (row-level security)
    SyncLinkedVisible,       // SyncLinkedCustomer without the lock (row-level security)
    // matching_keys.cpp, audit_log.cpp, lifecycle.cpp: customers
    KeysInsert,
    KeysDelete,
    AuditInsert,
    StageEventInsert,
    // metrics.cpp: "VC Usage" -> customer_metrics
    MetricsFoldInsert,
    MetricsFoldUpdate,
    MetricsFoldDelete,
    MetricsExistingInsert,
    MetricsExistingUpdate,
    MetricsExistingDelete,
    MetricsLockOrCreate,
    MetricsRecompute,
    MetricsUpdateRow,
    MetricsDeleteRow,
    MetricsDeleteAll,
    MetricsChatLock,
    MetricsChatCreate,
    MetricsChatUpdate,
    Count
};

// Runs `statement` against the tables of the schema `rel` (the table the
// trigger fires on) lives in, preparing and caching its plan on first use.
// The caller is connected to SPI. With a valid `snapshot` the statement reads
// with it (customer_sync's latest-snapshot re-check). `size_class` selects
// one of two kept plans of the same statement (metrics: a plan made for a
// 10,000-row transition table is a poor plan for one row, and the other way
// round). Raises an error when SPI reports anything but the statement's
// expected result; returns SPI_processed.
uint64 run(Relation rel, Statement statement, Datum* values, const char* nulls, long tcount = 0,
           Snapshot snapshot = InvalidSnapshot, int size_class = 0);

// The row a BEFORE trigger returns with column `attnum` set to `value`
// (not null), converted to the column as an assignment in SQL or plpgsql
// would: its type modifier applied (timestamptz(0) rounds) and, for a
// domain, the domain's constraints checked (an error names the domain), so
// the row is what "NEW.column := value" would have made.
HeapTuple set_column(Relation rel, HeapTuple row, AttrNumber attnum, Datum value);

// Whether row-level security applies to the current role on the relation
// that plays `table` for a trigger on rel.
bool row_security_applies(Relation rel, Table table);

// The schema whose CRM tables a trigger on rel uses: its home table's (for
// a partition, the table install() attached the trigger to). Valid once
// the trigger's protocol check has run.
Oid crm_schema(Relation rel);

// The row changes (inserts, updates, deletes) the current transaction has
// made so far to the chat table rel plays a part of (its home table, and
// every partition of a partitioned one), in its live subtransactions, as
// the statistics collector's per-transaction counters have them (0 with
// track_counts off). *home: that table. The metrics triggers compare it with
// their own changes (metrics.cpp, "alone").
int64 chat_row_changes(Relation rel, Oid* home);

// ---------------------------------------------------------------------------
// Writers (each runs one statement; the caller is connected to SPI)
// ---------------------------------------------------------------------------

// The customer's matching keys of the given types (text datums), one row per
// key: key_type, key_value (raw), normalized_value.
void insert_matching_keys(Relation customers, Datum customer_id, Datum company_id, Datum* key_types, Datum* raw,
                          Datum* normalized, int n);
// The customer's matching keys of the given types.
void delete_matching_keys(Relation customers, Datum customer_id, Datum* key_types, int n);

// A 'stage_changed' customer event: {"from": from, "to": to} (text datums).
void insert_stage_event(Relation customers, Datum customer_id, bool customer_null, Datum company_id,
                        bool company_null, Datum from, bool from_null, Datum to, bool to_null);

// One customer_audit_log row. old_row/new_row: composite datums of the
// customers row type (or null); changed_fields: text[] or null.
struct AuditRow {
    Datum record_id;
    bool record_id_null;
    Datum company_id;
    bool company_id_null;
    const char* operation;  // INSERT, UPDATE or DELETE
    Datum old_row;
    bool old_row_null;
    Datum new_row;
    bool new_row_null;
    Datum changed_fields;
    bool changed_fields_null;
    Datum changed_by;  // uuid
    bool changed_by_null;
};
void insert_audit_row(Relation customers, const AuditRow* row);

}  // namespace crm::pg::store

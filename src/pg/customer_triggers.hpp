// Shared machinery of the three native triggers on customers
// (matching_keys.cpp, audit_log.cpp, lifecycle.cpp): the per-relation
// metadata cache and the SPI plans each trigger prepares once per backend.
//
// The trigger code is C-style on purpose: it calls SPI and other backend
// functions that may ereport (longjmp), so no C++ object with a destructor is
// ever live in these frames, and nothing here throws.
//
// search_path safety: every statement names its tables with the schema of the
// triggering customers table, every function and operator with pg_catalog,
// and passes values as typed parameters (no casts by type name). A hostile
// search_path therefore cannot redirect a write, and the functions need no
// SET search_path clause (which would cost a GUC save/restore per row).
#pragma once

// Backend headers used by the customers triggers, in one place: some of them
// (ilist.h, s_lock.h) do not compile cleanly as C++17 under -Wextra.
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
#include "utils/timestamp.h"
#include "utils/typcache.h"
}
#pragma GCC diagnostic pop

namespace crm::pg::customers {

// How audit_log decides whether a column changed between OLD and NEW.
enum class CompareMode : char {
    Image,     // binary image (exact: equal values have equal images)
    Equality,  // the type's default equality operator, after an image check
};

struct AuditColumn {
    AttrNumber attnum;
    Oid collation;
    CompareMode mode;
    FmgrInfo equality;  // valid when mode == Equality
    Datum name_text;    // the column name as a text datum, for changed_fields
};

// One entry per customers relation a trigger fired on (keyed by its OID).
struct CustomerRel {
    Oid relid;  // hash key
    bool valid;  // cleared by the relcache callback; revalidated on next use

    Oid namespace_oid;
    char* quoted_schema;  // quote_identifier(schema), in the entry's context
    Oid rowtype;          // the relation's composite type, for to_jsonb

    AttrNumber att_id;
    AttrNumber att_company_id;
    AttrNumber att_name;
    AttrNumber att_email;
    AttrNumber att_phone;
    AttrNumber att_stage;
    AttrNumber att_stage_changed_at;
    Oid stage_type;  // type of lifecycle_stage (text unless the app chose otherwise)

    // Audit: the live columns sorted by name (byte order), so changed_fields
    // comes out sorted without a sort per row.
    int audit_ncolumns;
    AuditColumn* audit_columns;

    MemoryContext cxt;  // holds quoted_schema and audit_columns

    // SPI plans, prepared on first use and kept (SPI_keepplan). They are
    // re-parsed by the plan cache after DDL on the tables they name.
    SPIPlanPtr keys_insert;
    SPIPlanPtr keys_delete;
    SPIPlanPtr audit_insert;
    SPIPlanPtr stage_event_insert;
};

// The cache entry for rel, (re)built if needed. Never returns null; ereports
// when the relation lacks a column every customers trigger needs (id,
// company_id as uuid).
CustomerRel* customer_rel(Relation rel);

// Raises a clear error naming the trigger and the missing/mistyped column.
void require_column(const char* trigger, Relation rel, AttrNumber attnum, const char* column);

// Prepares (once) and keeps a plan for query_template, whose one %s is the
// quoted schema: the text is formatted only on the first call, not per row.
// A template written with positional %1$s may also use %2$s: `extra`.
// Call between SPI_connect and SPI_finish.
SPIPlanPtr keep_plan(SPIPlanPtr* slot, const char* query_template, const char* quoted_schema, int nargs,
                     Oid* argtypes, const char* extra = "");

// Runs a kept plan, checking the result code; returns SPI_processed.
uint64 run_plan(SPIPlanPtr plan, Datum* values, const char* nulls, int expected, const char* trigger);

// The trigger calling convention checks shared by the three triggers.
TriggerData* trigger_data_or_error(FunctionCallInfo fcinfo, const char* trigger);

// The value of a by-reference text column, or nullptr when NULL.
inline Datum column_value(HeapTuple tuple, TupleDesc desc, AttrNumber attnum, bool* isnull) {
    return heap_getattr(tuple, attnum, desc, isnull);
}

}  // namespace crm::pg::customers

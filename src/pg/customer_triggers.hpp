// Shared machinery of the three native triggers on customers
// (matching_keys.cpp, audit_log.cpp, lifecycle.cpp): the per-relation
// metadata cache (attribute numbers, the audit's column list). Their
// statements and checks are the data-access layer's (store.hpp).
//
// The trigger code is C-style on purpose: it calls SPI and other backend
// functions that may ereport (longjmp), so no C++ object with a destructor is
// ever live in these frames, and nothing here throws.
#pragma once

#include "pg/store.hpp"

namespace crm::pg::customers {

// How audit_log decides whether a column changed between OLD and NEW. The
// contract's "changed" is the plpgsql trigger's: to_jsonb() of the old and
// the new value differ (so 1.0 -> 1.00 is no change, but 'a' -> 'A' is one
// under a case-insensitive collation or citext).
enum class CompareMode : char {
    Image,    // binary image: for these types, equal JSON exactly when equal images
    Jsonb,    // a jsonb column: after an image check, jsonb equality
    ToJsonb,  // after an image check: to_jsonb() of both values, compared
};

struct AuditColumn {
    AttrNumber attnum;
    CompareMode mode;
    FmgrInfo to_jsonb;  // valid when mode == ToJsonb: to_jsonb() for this column's type
    Datum name_text;    // the column name as a text datum, for changed_fields
};

// One entry per customers relation a trigger fired on (keyed by its OID).
struct CustomerRel {
    Oid relid;  // hash key
    bool valid;  // cleared by the relcache callback; revalidated on next use


    // 0 when missing or of a type the column list does not accept: the
    // trigger that needs the column then raises the error (need_column).
    AttrNumber att_id;
    AttrNumber att_company_id;
    AttrNumber att_name;
    AttrNumber att_email;
    AttrNumber att_phone;
    AttrNumber att_stage;
    AttrNumber att_stage_changed_at;

    // Audit: the live columns sorted by name (byte order), so changed_fields
    // comes out sorted without a sort per row.
    int audit_ncolumns;
    AuditColumn* audit_columns;

    MemoryContext cxt;  // holds audit_columns
};

// The cache entry for rel, (re)built if needed. Never returns null; ereports
// when the relation lacks a column every customers trigger needs (id,
// company_id as uuid).
CustomerRel* customer_rel(Relation rel);

// Raises the column list's clear error when a column a trigger needs is
// missing or mistyped (attnum 0 in the cache entry).
inline void need_column(const char* trigger, Relation rel, AttrNumber attnum, const char* column) {
    if (attnum == InvalidAttrNumber) store::require_column(trigger, rel, store::Table::Customers, column);
}

}  // namespace crm::pg::customers

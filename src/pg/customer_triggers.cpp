// Per-relation metadata cache and SPI plan helpers for the native customers
// triggers. See customer_triggers.hpp for the rules this code follows.
#include "pg/customer_triggers.hpp"

#include <cstring>

#include "pg/retired_plans.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "nodes/makefuncs.h"
#include "utils/fmgroids.h"
}
#pragma GCC diagnostic pop

namespace crm::pg::customers {

namespace {

HTAB* relations = nullptr;  // Oid -> CustomerRel, in CacheMemoryContext

// Any change to a customers relation (ALTER TABLE, rename, SET SCHEMA, drop)
// sends a relcache invalidation: rebuild that entry's metadata on next use.
void invalidate_relation(Datum, Oid relid) {
    if (relations == nullptr) return;
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, relations);
    CustomerRel* entry;
    while ((entry = static_cast<CustomerRel*>(hash_seq_search(&scan))) != nullptr) {
        if (relid == InvalidOid || entry->relid == relid) entry->valid = false;
    }
}

void forget_dropped(bool (*gone)(Oid)) {
    crm::pg::store::forget_gone_entries(relations, gone, [](void* entry) {
        CustomerRel* e = static_cast<CustomerRel*>(entry);
        if (e->cxt != nullptr) crm::pg::retire_memory_context(e->cxt);
        e->cxt = nullptr;
    });
}

void ensure_hash() {
    if (relations != nullptr) return;
    HASHCTL ctl;
    std::memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(CustomerRel);
    ctl.hcxt = CacheMemoryContext;
    relations = hash_create("crm_native customers relations", 8, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    CacheRegisterRelcacheCallback(invalidate_relation, (Datum)0);
    crm::pg::store::on_dropped_relations(forget_dropped);
}

// Types whose to_jsonb() values are equal exactly when the binary images are
// equal: comparing images is exact and needs no function call. Text compares
// as JSON strings do, byte for byte, whatever the column's collation (a
// case-insensitive one would call 'a' and 'A' equal; the plpgsql trigger's
// JSON does not). Arrays are not listed: equal arrays may differ in image
// (e.g. an all-valid null bitmap); numeric neither (1.0 and 1.00).
bool image_is_exact(Oid type) {
    switch (type) {
        case UUIDOID:
        case INT2OID:
        case INT4OID:
        case INT8OID:
        case BOOLOID:
        case OIDOID:
        case DATEOID:
        case TIMESTAMPOID:
        case TIMESTAMPTZOID:
        case BYTEAOID:
        case CHAROID:
            return true;
        case TEXTOID:
        case VARCHAROID:
            return true;
        default:
            return false;
    }
}

struct NamedColumn {
    const char* name;
    AttrNumber attnum;
};

int compare_names(const void* a, const void* b) {
    return std::strcmp(static_cast<const NamedColumn*>(a)->name, static_cast<const NamedColumn*>(b)->name);
}

void build_audit_columns(CustomerRel* entry, TupleDesc desc) {
    NamedColumn* named = static_cast<NamedColumn*>(palloc(sizeof(NamedColumn) * (desc->natts + 1)));
    int n = 0;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped) continue;
        named[n].name = NameStr(att->attname);
        named[n].attnum = att->attnum;
        n++;
    }
    qsort(named, n, sizeof(NamedColumn), compare_names);

    MemoryContext old = MemoryContextSwitchTo(entry->cxt);
    entry->audit_columns = static_cast<AuditColumn*>(palloc0(sizeof(AuditColumn) * (n + 1)));
    entry->audit_ncolumns = n;
    for (int i = 0; i < n; i++) {
        AuditColumn* column = &entry->audit_columns[i];
        Form_pg_attribute att = TupleDescAttr(desc, named[i].attnum - 1);
        column->attnum = named[i].attnum;
        column->name_text = PointerGetDatum(cstring_to_text(named[i].name));
        column->mode = CompareMode::Image;
        Oid type = getBaseType(att->atttypid);
        if (type == JSONBOID) {
            column->mode = CompareMode::Jsonb;  // to_jsonb(jsonb) is the value itself
        } else if (!image_is_exact(type)) {
            // to_jsonb(anyelement) reads its argument's type from the call
            // expression: give it one with this column's type.
            fmgr_info_cxt(F_TO_JSONB, &column->to_jsonb, entry->cxt);
            column->to_jsonb.fn_expr = reinterpret_cast<Node*>(
                makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(makeNullConst(att->atttypid, att->atttypmod, att->attcollation)),
                             InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL));
            column->mode = CompareMode::ToJsonb;
        }
    }
    MemoryContextSwitchTo(old);
    pfree(named);
}

void rebuild(CustomerRel* entry, Relation rel) {
    TupleDesc desc = RelationGetDescr(rel);

    // A fresh context each time: an outer audit call may still be walking
    // the old column list (a to_jsonb() cast that writes a customer, and
    // DDL meanwhile), so the old one is freed when the transaction ends.
    MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext, "crm_native customers relation", ALLOCSET_SMALL_SIZES);
    if (entry->cxt != nullptr) crm::pg::retire_memory_context(entry->cxt);
    entry->cxt = cxt;
    // Every customers trigger needs id and company_id; the others are
    // checked by the trigger that uses them (store::require_column).
    const char* trigger = "crm_native customers trigger";
    entry->att_id = store::require_column(trigger, rel, store::Table::Customers, "id");
    entry->att_company_id = store::require_column(trigger, rel, store::Table::Customers, "company_id");
    entry->att_name = store::optional_column(rel, store::Table::Customers, "customer_name");
    entry->att_email = store::optional_column(rel, store::Table::Customers, "customer_email");
    entry->att_phone = store::optional_column(rel, store::Table::Customers, "customer_phone");
    entry->att_stage = store::optional_column(rel, store::Table::Customers, "lifecycle_stage");
    entry->att_stage_changed_at = store::optional_column(rel, store::Table::Customers, "lifecycle_stage_changed_at");
    build_audit_columns(entry, desc);
    entry->valid = true;
}

}  // namespace

CustomerRel* customer_rel(Relation rel) {
    ensure_hash();
    Oid relid = RelationGetRelid(rel);
    bool found = false;
    CustomerRel* entry = static_cast<CustomerRel*>(hash_search(relations, &relid, HASH_ENTER, &found));
    if (!found) std::memset(reinterpret_cast<char*>(entry) + sizeof(Oid), 0, sizeof(CustomerRel) - sizeof(Oid));
    if (!entry->valid) rebuild(entry, rel);
    return entry;
}

}  // namespace crm::pg::customers

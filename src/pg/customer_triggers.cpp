// Per-relation metadata cache and SPI plan helpers for the native customers
// triggers. See customer_triggers.hpp for the rules this code follows.
#include "pg/customer_triggers.hpp"
#include "pg/retired_plans.hpp"


#include <cstring>

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

void ensure_hash() {
    if (relations != nullptr) return;
    HASHCTL ctl;
    std::memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(CustomerRel);
    ctl.hcxt = CacheMemoryContext;
    relations = hash_create("crm_native customers relations", 8, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    CacheRegisterRelcacheCallback(invalidate_relation, (Datum)0);
}

AttrNumber find_column(TupleDesc desc, const char* name) {
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped && std::strcmp(NameStr(att->attname), name) == 0) return att->attnum;
    }
    return InvalidAttrNumber;
}

// Types whose default equality holds exactly when the binary images are equal
// (under a deterministic collation): comparing images is exact and needs no
// function call. Arrays are not listed: equal arrays may differ in image
// (e.g. an all-valid null bitmap), so array_eq decides when images differ.
bool image_is_exact(Oid type, Oid collation) {
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
            return !OidIsValid(collation) || get_collation_isdeterministic(collation);
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
        column->collation = att->attcollation;
        column->name_text = PointerGetDatum(cstring_to_text(named[i].name));
        column->mode = CompareMode::Image;
        if (!image_is_exact(att->atttypid, att->attcollation)) {
            TypeCacheEntry* type = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR_FINFO);
            if (OidIsValid(type->eq_opr_finfo.fn_oid)) {
                fmgr_info_copy(&column->equality, &type->eq_opr_finfo, entry->cxt);
                column->mode = CompareMode::Equality;
            }
            // else: no equality operator (json, xml, point, ...): images decide.
        }
    }
    MemoryContextSwitchTo(old);
    pfree(named);
}

void rebuild(CustomerRel* entry, Relation rel) {
    TupleDesc desc = RelationGetDescr(rel);
    Oid nsp = RelationGetNamespace(rel);

    if (entry->cxt == nullptr) {
        entry->cxt = AllocSetContextCreate(CacheMemoryContext, "crm_native customers relation", ALLOCSET_SMALL_SIZES);
    } else {
        MemoryContextReset(entry->cxt);
    }
    // A relation moved to another schema writes to that schema's tables: the
    // kept plans name the old one, so replace them (freed at transaction
    // end: a plan may still be running further up the stack).
    if (entry->namespace_oid != nsp) {
        SPIPlanPtr* plans[4] = {&entry->keys_insert, &entry->keys_delete, &entry->audit_insert,
                                &entry->stage_event_insert};
        for (SPIPlanPtr* plan : plans) {
            crm::pg::retire_plan(*plan);
            *plan = nullptr;
        }
    }
    entry->namespace_oid = nsp;
    char* schema = get_namespace_name(nsp);
    if (schema == nullptr) elog(ERROR, "crm_native: cache lookup failed for namespace %u", nsp);
    entry->quoted_schema = MemoryContextStrdup(entry->cxt, quote_identifier(schema));
    entry->rowtype = desc->tdtypeid;

    entry->att_id = find_column(desc, "id");
    entry->att_company_id = find_column(desc, "company_id");
    entry->att_name = find_column(desc, "customer_name");
    entry->att_email = find_column(desc, "customer_email");
    entry->att_phone = find_column(desc, "customer_phone");
    entry->att_stage = find_column(desc, "lifecycle_stage");
    entry->att_stage_changed_at = find_column(desc, "lifecycle_stage_changed_at");
    entry->stage_type = entry->att_stage != InvalidAttrNumber ? TupleDescAttr(desc, entry->att_stage - 1)->atttypid
                                                                 : InvalidOid;
    build_audit_columns(entry, desc);
    entry->valid = true;
}

const char* type_name_for_error(Oid type) { return OidIsValid(type) ? format_type_be(type) : "?"; }

}  // namespace

void require_column(const char* trigger, Relation rel, AttrNumber attnum, const char* column) {
    if (attnum != InvalidAttrNumber) return;
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                    errmsg("%s: table \"%s\".\"%s\" has no column \"%s\"", trigger,
                           get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel), column),
                    errhint("crm_native.install() checks the application schema before attaching the triggers.")));
}

CustomerRel* customer_rel(Relation rel) {
    ensure_hash();
    Oid relid = RelationGetRelid(rel);
    bool found = false;
    CustomerRel* entry = static_cast<CustomerRel*>(hash_search(relations, &relid, HASH_ENTER, &found));
    if (!found) {
        std::memset(reinterpret_cast<char*>(entry) + sizeof(Oid), 0, sizeof(CustomerRel) - sizeof(Oid));
        entry->namespace_oid = InvalidOid;
    }
    if (!entry->valid) rebuild(entry, rel);

    TupleDesc desc = RelationGetDescr(rel);
    const char* trigger = "crm_native customers trigger";
    require_column(trigger, rel, entry->att_id, "id");
    require_column(trigger, rel, entry->att_company_id, "company_id");
    Oid id_type = TupleDescAttr(desc, entry->att_id - 1)->atttypid;
    Oid company_type = TupleDescAttr(desc, entry->att_company_id - 1)->atttypid;
    if (id_type != UUIDOID || company_type != UUIDOID) {
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("%s: columns id and company_id of \"%s\" must be uuid (they are %s and %s)", trigger,
                               RelationGetRelationName(rel), type_name_for_error(id_type),
                               type_name_for_error(company_type))));
    }
    return entry;
}

SPIPlanPtr keep_plan(SPIPlanPtr* slot, const char* query_template, const char* quoted_schema, int nargs,
                     Oid* argtypes, const char* extra) {
    if (*slot != nullptr) return *slot;
    char* query = psprintf(query_template, quoted_schema, extra);
    SPIPlanPtr plan = SPI_prepare(query, nargs, argtypes);
    if (plan == nullptr) elog(ERROR, "crm_native: SPI_prepare failed (%s) for: %s", SPI_result_code_string(SPI_result), query);
    if (SPI_keepplan(plan) != 0) elog(ERROR, "crm_native: SPI_keepplan failed for: %s", query);
    pfree(query);
    *slot = plan;
    return plan;
}

uint64 run_plan(SPIPlanPtr plan, Datum* values, const char* nulls, int expected, const char* trigger) {
    int rc = SPI_execute_plan(plan, values, nulls, false, 0);
    if (rc != expected) elog(ERROR, "%s: SPI_execute_plan returned %s", trigger, SPI_result_code_string(rc));
    return SPI_processed;
}

TriggerData* trigger_data_or_error(FunctionCallInfo fcinfo, const char* trigger) {
    if (!CALLED_AS_TRIGGER(fcinfo)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s: not called by the trigger manager", trigger)));
    }
    TriggerData* data = reinterpret_cast<TriggerData*>(fcinfo->context);
    if (!TRIGGER_FIRED_FOR_ROW(data->tg_event)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s: must be a FOR EACH ROW trigger", trigger)));
    }
    return data;
}

}  // namespace crm::pg::customers

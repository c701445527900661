// crm_native.audit_log(): AFTER INSERT OR UPDATE OR DELETE ON customers.
//
// One customer_audit_log row per changed customer row:
//   table_name = the triggering table's name, record_id/company_id of the row,
//   operation 'INSERT' | 'UPDATE' | 'DELETE',
//   old_data/new_data = to_jsonb() of the rows (NULL where there is none),
//   changed_fields = the columns whose values differ, sorted by name in byte
//     order (NULL for INSERT and DELETE); an UPDATE that changes no column
//     writes no row,
//   changed_by_user_id = current_setting('app.current_user_id', true)::uuid,
//     NULL when unset or empty. A value that is not a uuid raises the same
//     error (22P02) as the plpgsql cast did: an audit row must not silently
//     lose who made the change, so the application's statement fails instead.
// to_jsonb runs inside the INSERT (pg_catalog.to_jsonb on a row-typed
// parameter), so the JSON is exactly the backend's own.
#include "pg/customer_triggers.hpp"
#include "pg/guard.hpp"
#include "pg/trigger_stats.hpp"  // trigger_stats


#include <cstdio>

namespace {

using namespace crm::pg::customers;
namespace store = crm::pg::store;

constexpr const char* kTrigger = "crm_native.audit_log";
constexpr const char* kUserSetting = "app.current_user_id";

// A column's value as the plpgsql trigger's to_jsonb(row) has it.
Datum as_jsonb(const AuditColumn* column, Datum value) {
    if (column->mode == CompareMode::Jsonb) return value;
    return FunctionCall1(const_cast<FmgrInfo*>(&column->to_jsonb), value);
}

bool column_changed(const AuditColumn* column, TupleDesc desc, HeapTuple old_row, HeapTuple new_row) {
    bool old_null, new_null;
    Datum old_value = heap_getattr(old_row, column->attnum, desc, &old_null);
    Datum new_value = heap_getattr(new_row, column->attnum, desc, &new_null);
    if (old_null && new_null) return false;
    if (old_null || new_null) {
        // SQL NULL is JSON null in to_jsonb(row): so is a jsonb 'null' (or
        // a json or other value whose JSON is null) on the other side.
        if (column->mode == CompareMode::Image) return true;
        Datum json = as_jsonb(column, old_null ? new_value : old_value);
        Datum null_json = DirectFunctionCall1(jsonb_in, CStringGetDatum("null"));
        return !DatumGetBool(DirectFunctionCall2(jsonb_eq, json, null_json));
    }
    Form_pg_attribute att = TupleDescAttr(desc, column->attnum - 1);
    if (datum_image_eq(old_value, new_value, att->attbyval, att->attlen)) return false;
    if (column->mode == CompareMode::Image) return true;
    // Different images, maybe equal JSON (numeric 1.0 vs 1.00, an array's
    // null bitmap, jsonb): decide as the plpgsql trigger did, on to_jsonb().
    return !DatumGetBool(DirectFunctionCall2(jsonb_eq, as_jsonb(column, old_value), as_jsonb(column, new_value)));
}

// The sorted text[] of changed column names, or nullptr when nothing changed.
ArrayType* changed_fields(const CustomerRel* entry, TupleDesc desc, HeapTuple old_row, HeapTuple new_row) {
    // This call's column list: a nested call may rebuild the entry (the old
    // list stays valid until the transaction ends, customer_triggers.cpp).
    const AuditColumn* columns = entry->audit_columns;
    const int ncolumns = entry->audit_ncolumns;
    Datum* names = static_cast<Datum*>(palloc(sizeof(Datum) * (ncolumns + 1)));
    int n = 0;
    for (int i = 0; i < ncolumns; i++) {
        const AuditColumn* column = &columns[i];
        if (column_changed(column, desc, old_row, new_row)) names[n++] = column->name_text;
    }
    if (n == 0) return nullptr;
    return construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
}

void user_setting_context(void*) { errcontext("reading setting \"%s\" in %s()", kUserSetting, kTrigger); }

// changed_by_user_id: NULL when the setting is unset or empty.
bool current_user_id(Datum* out) {
    const char* setting = GetConfigOption(kUserSetting, true, false);
    if (setting == nullptr || setting[0] == '\0') return false;
    ErrorContextCallback context;
    context.callback = user_setting_context;
    context.arg = nullptr;
    context.previous = error_context_stack;
    error_context_stack = &context;
    *out = DirectFunctionCall1(uuid_in, CStringGetDatum(setting));
    error_context_stack = context.previous;
    return true;
}

Datum audit_log(FunctionCallInfo fcinfo) {
    TriggerData* data = store::trigger_call(fcinfo, kTrigger, store::kAfter | store::kForEachRow | store::kOnInsert |
                                                                  store::kOnUpdate | store::kOnDelete);
    Relation rel = data->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    CustomerRel* entry = customer_rel(rel);

    HeapTuple old_row = nullptr;
    HeapTuple new_row = nullptr;
    const char* operation;
    if (TRIGGER_FIRED_BY_INSERT(data->tg_event)) {
        operation = "INSERT";
        new_row = data->tg_trigtuple;
    } else if (TRIGGER_FIRED_BY_UPDATE(data->tg_event)) {
        operation = "UPDATE";
        old_row = data->tg_trigtuple;
        new_row = data->tg_newtuple;
    } else {  // DELETE (trigger_call checked the events)
        operation = "DELETE";
        old_row = data->tg_trigtuple;
    }

    ArrayType* changed = nullptr;
    if (old_row != nullptr && new_row != nullptr) {
        changed = changed_fields(entry, desc, old_row, new_row);
        if (changed == nullptr) return PointerGetDatum(nullptr);  // a no-op UPDATE is not audited
    }

    HeapTuple row = new_row != nullptr ? new_row : old_row;
    store::AuditRow audit;
    audit.record_id = heap_getattr(row, entry->att_id, desc, &audit.record_id_null);
    audit.company_id = heap_getattr(row, entry->att_company_id, desc, &audit.company_id_null);
    audit.operation = operation;
    audit.old_row_null = old_row == nullptr;
    audit.old_row = old_row != nullptr ? heap_copy_tuple_as_datum(old_row, desc) : (Datum)0;
    audit.new_row_null = new_row == nullptr;
    audit.new_row = new_row != nullptr ? heap_copy_tuple_as_datum(new_row, desc) : (Datum)0;
    audit.changed_fields_null = changed == nullptr;
    audit.changed_fields = PointerGetDatum(changed);
    audit.changed_by = (Datum)0;
    audit.changed_by_null = !current_user_id(&audit.changed_by);

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "%s: SPI_connect failed", kTrigger);
    store::insert_audit_row(rel, &audit);
    SPI_finish();
    return PointerGetDatum(nullptr);
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(crm_audit_log);
Datum crm_audit_log(PG_FUNCTION_ARGS) { return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded([&]() -> Datum { return audit_log(fcinfo); }); }); }  // trigger_stats
}

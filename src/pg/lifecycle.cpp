// crm_native.lifecycle_tracking(): BEFORE UPDATE ON customers
//   WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage).
//
// Sets NEW.lifecycle_stage_changed_at = now() (the transaction's start time,
// as now() is) and writes customer_events ('stage_changed',
// {"from": old stage, "to": new stage}). Without the WHEN clause it checks the
// change itself, so a misdeclared trigger cannot log a non-change.
#include "pg/customer_triggers.hpp"
#include "pg/trigger_stats.hpp"  // trigger_stats


#include <cstdio>

namespace {

using namespace crm::pg::customers;

constexpr const char* kTrigger = "crm_native.lifecycle_tracking";

// The stage as text (a text or varchar column is passed as is; any other type,
// e.g. an enum, through its output function, as jsonb_build_object would).
Datum stage_as_text(Datum value, Oid type) {
    if (type == TEXTOID || type == VARCHAROID) return value;
    Oid output;
    bool varlena;
    getTypeOutputInfo(type, &output, &varlena);
    return CStringGetTextDatum(OidOutputFunctionCall(output, value));
}

Datum lifecycle_tracking(FunctionCallInfo fcinfo) {
    TriggerData* data = trigger_data_or_error(fcinfo, kTrigger);
    if (!TRIGGER_FIRED_BEFORE(data->tg_event) || !TRIGGER_FIRED_BY_UPDATE(data->tg_event)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s: must be a BEFORE UPDATE trigger", kTrigger)));
    }
    Relation rel = data->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    CustomerRel* entry = customer_rel(rel);
    require_column(kTrigger, rel, entry->att_stage, "lifecycle_stage");
    require_column(kTrigger, rel, entry->att_stage_changed_at, "lifecycle_stage_changed_at");
    if (TupleDescAttr(desc, entry->att_stage_changed_at - 1)->atttypid != TIMESTAMPTZOID) {
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("%s: column \"lifecycle_stage_changed_at\" of \"%s\" must be timestamptz", kTrigger,
                               RelationGetRelationName(rel))));
    }

    HeapTuple old_row = data->tg_trigtuple;
    HeapTuple new_row = data->tg_newtuple;
    bool old_null, new_null;
    Datum old_stage = heap_getattr(old_row, entry->att_stage, desc, &old_null);
    Datum new_stage = heap_getattr(new_row, entry->att_stage, desc, &new_null);
    Form_pg_attribute stage_att = TupleDescAttr(desc, entry->att_stage - 1);
    bool unchanged = (old_null || new_null)
                         ? (old_null && new_null)
                         : datum_image_eq(old_stage, new_stage, stage_att->attbyval, stage_att->attlen);
    if (unchanged) return PointerGetDatum(new_row);

    int column = entry->att_stage_changed_at;
    Datum now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    bool now_null = false;
    HeapTuple result = heap_modify_tuple_by_cols(new_row, desc, 1, &column, &now, &now_null);

    bool isnull;
    Datum values[5];
    char nulls[6] = "     ";
    values[0] = heap_getattr(new_row, entry->att_id, desc, &isnull);
    if (isnull) nulls[0] = 'n';
    values[1] = heap_getattr(new_row, entry->att_company_id, desc, &isnull);
    if (isnull) nulls[1] = 'n';
    values[2] = CStringGetTextDatum("stage_changed");
    values[3] = old_null ? (Datum)0 : stage_as_text(old_stage, entry->stage_type);
    if (old_null) nulls[3] = 'n';
    values[4] = new_null ? (Datum)0 : stage_as_text(new_stage, entry->stage_type);
    if (new_null) nulls[4] = 'n';

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "%s: SPI_connect failed", kTrigger);
    // %s = the schema: formatted only when the plan is first prepared.
    const char* query =
        "INSERT INTO %s.customer_events (customer_id, company_id, event_type, event_data)"
        " VALUES ($1, $2, $3, pg_catalog.jsonb_build_object("
        "'from'::pg_catalog.text, $4, 'to'::pg_catalog.text, $5))";
    Oid types[5] = {UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID};
    SPIPlanPtr plan = keep_plan(&entry->stage_event_insert, query, entry->quoted_schema, 5, types);
    run_plan(plan, values, nulls, SPI_OK_INSERT, kTrigger);
    SPI_finish();
    return PointerGetDatum(result);
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(crm_lifecycle_tracking);
Datum crm_lifecycle_tracking(PG_FUNCTION_ARGS) { return crm::pg::trigger_stats::measured(fcinfo, lifecycle_tracking); }  // trigger_stats
}

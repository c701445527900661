// crm_native.lifecycle_tracking(): BEFORE UPDATE ON customers
//   WHEN (OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage).
//
// Sets NEW.lifecycle_stage_changed_at = now() (the transaction's start time,
// as now() is) and writes customer_events ('stage_changed',
// {"from": old stage, "to": new stage}). Without the WHEN clause it checks the
// change itself, so a misdeclared trigger cannot log a non-change.
#include "pg/customer_triggers.hpp"
#include "pg/guard.hpp"
#include "pg/trigger_stats.hpp"  // trigger_stats


#include <cstdio>

namespace {

using namespace crm::pg::customers;
namespace store = crm::pg::store;

constexpr const char* kTrigger = "crm_native.lifecycle_tracking";

Datum lifecycle_tracking(FunctionCallInfo fcinfo) {
    TriggerData* data = store::trigger_call(fcinfo, kTrigger, store::kBefore | store::kForEachRow | store::kOnUpdate);
    Relation rel = data->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    CustomerRel* entry = customer_rel(rel);
    need_column(kTrigger, rel, entry->att_stage, "lifecycle_stage");
    need_column(kTrigger, rel, entry->att_stage_changed_at, "lifecycle_stage_changed_at");

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

    HeapTuple result = store::set_column(rel, new_row, entry->att_stage_changed_at,
                                         TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));

    bool id_null, company_null;
    Datum customer_id = heap_getattr(new_row, entry->att_id, desc, &id_null);
    Datum company_id = heap_getattr(new_row, entry->att_company_id, desc, &company_null);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "%s: SPI_connect failed", kTrigger);
    store::insert_stage_event(rel, customer_id, id_null, company_id, company_null, old_stage, old_null, new_stage,
                              new_null);
    SPI_finish();
    return PointerGetDatum(result);
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(crm_lifecycle_tracking);
Datum crm_lifecycle_tracking(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded([&]() -> Datum { return lifecycle_tracking(fcinfo); }); });  // trigger_stats
}
}

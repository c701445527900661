// See retired_plans.hpp.
#include "pg/retired_plans.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "access/xact.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
}
#pragma GCC diagnostic pop

namespace {

List* retired_plans = NIL;   // of SPIPlanPtr, in TopMemoryContext
List* retired_descs = NIL;  // of TupleDesc, in TopMemoryContext
List* retired_contexts = NIL;  // of MemoryContext, in TopMemoryContext
bool callback_registered = false;

void free_retired(XactEvent event, void*) {
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_COMMIT &&
        event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
        return;
    List* plans = retired_plans;
    List* descs = retired_descs;
    List* contexts = retired_contexts;
    retired_plans = NIL;
    retired_descs = NIL;
    retired_contexts = NIL;
    ListCell* cell;
    foreach (cell, plans) SPI_freeplan(static_cast<SPIPlanPtr>(lfirst(cell)));
    foreach (cell, descs) FreeTupleDesc(static_cast<TupleDesc>(lfirst(cell)));
    foreach (cell, contexts) MemoryContextDelete(static_cast<MemoryContext>(lfirst(cell)));
    list_free(plans);
    list_free(descs);
    list_free(contexts);
}

void ensure_callback() {
    if (callback_registered) return;
    RegisterXactCallback(free_retired, nullptr);
    callback_registered = true;
}

}  // namespace

namespace crm::pg {

void retire_plan(SPIPlanPtr plan) {
    if (plan == nullptr) return;
    ensure_callback();
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    retired_plans = lappend(retired_plans, plan);
    MemoryContextSwitchTo(old);
}

void retire_memory_context(MemoryContext context) {
    if (context == nullptr) return;
    ensure_callback();
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    retired_contexts = lappend(retired_contexts, context);
    MemoryContextSwitchTo(old);
}

void retire_tuple_desc(TupleDesc desc) {
    if (desc == nullptr) return;
    ensure_callback();
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    retired_descs = lappend(retired_descs, desc);
    MemoryContextSwitchTo(old);
}

}  // namespace crm::pg

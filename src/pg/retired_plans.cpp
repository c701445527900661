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

// Appends `item` (not null) to one of the lists freed at transaction end.
void retire(List** list, void* item) {
    if (item == nullptr) return;
    if (!callback_registered) {
        RegisterXactCallback(free_retired, nullptr);
        callback_registered = true;
    }
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    *list = lappend(*list, item);
    MemoryContextSwitchTo(old);
}

}  // namespace

namespace crm::pg {

void retire_plan(SPIPlanPtr plan) { retire(&retired_plans, plan); }
void retire_memory_context(MemoryContext context) { retire(&retired_contexts, context); }
void retire_tuple_desc(TupleDesc desc) { retire(&retired_descs, desc); }

}  // namespace crm::pg

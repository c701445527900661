// Kept SPI plans (and what they were built from) that a cache has replaced.
//
// A trigger may replace its cached plans while an outer call of the same
// trigger is still executing one of them (a nested chat written by an
// application trigger, after an invalidation from DDL such as CREATE SCHEMA).
// Freeing the old plan then would pull it from under the running executor.
// So a cache never frees a plan itself: it hands it here, and it is freed when
// the top-level transaction ends, when no statement of it can still run.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/spi.h"
}
#pragma GCC diagnostic pop

namespace crm::pg {

// The plan is freed (SPI_freeplan) at the end of the top-level transaction.
void retire_plan(SPIPlanPtr plan);
// A TupleDesc copied into TopMemoryContext, freed likewise (FreeTupleDesc).
void retire_tuple_desc(TupleDesc desc);
// A cache's memory context, deleted likewise (MemoryContextDelete).
void retire_memory_context(MemoryContext context);

}  // namespace crm::pg

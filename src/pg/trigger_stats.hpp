// Trigger statistics in shared memory (docs/observe.md): per native trigger
// function and table, calls, rows, time (total, min, max, a fixed histogram
// for p50/p95/p99: src/core/latency_histogram.hpp), errors and serialization
// failures, and what customer_sync decided (customers created and matched,
// chats left unlinked by reason, waits for its key and bulk locks). The model
// is pg_stat_statements: counters in shared memory, no write per call.
//
// It needs shared_preload_libraries = 'crm_native'. Without it (or with
// crm_native.trigger_stats = off) every function here is a plain call of
// what it wraps: measured() calls the trigger function, lock_acquire() calls
// LockAcquire(), the counters do nothing.
//
// The trigger files call it in few, marked places (// trigger_stats):
//   - each extern "C" trigger entry point: return measured(fcinfo, body);
//   - customer_sync.cpp: customer_created(), customer_matched(),
//     chat_unlinked()/normalized() and lock_acquire() at its decision points;
//   - store.cpp: statement_completed() after each statement it runs.
// All are C-style: no C++ object with a destructor, nothing throws.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
}

struct LOCKTAG;

namespace crm::pg::trigger_stats {

// Module start-up (_PG_init): the GUC crm_native.trigger_stats and, when
// loaded by shared_preload_libraries, the shared memory hooks.
void define();

// Runs the trigger function body(fcinfo), counting its call, rows (1 for a
// row-level trigger, the transition table's rows for a statement-level one,
// 0 for TRUNCATE) and time under (function, table). A PostgreSQL error is
// counted (as a serialization failure for SQLSTATE 40001, once, by the
// innermost native trigger it passes) and re-thrown.
Datum measured(FunctionCallInfo fcinfo, PGFunction body);

// A statement a trigger ran (store::run) returned: an error an inner
// trigger counted was caught on the way (an exception block), so the next
// error an outer trigger sees is a new one, and is counted.
void statement_completed();

// customer_sync's decisions, counted for the current measured call.
void customer_created();
void customer_matched();
enum class Unlinked { NoContact = 0, NormalizeFailed = 1 };
void chat_unlinked(Unlinked reason);
// Pass-through of read_chat_row()'s result: counts a chat left unlinked
// because its contact data could not be normalized (when it is unlinked).
bool normalized(bool ok, bool unlinked);

// LockAcquire(tag, mode, false, false), counting a wait (and its time) when
// the lock was not free. Returns LockAcquire's LockAcquireResult.
int lock_acquire(const LOCKTAG* tag, int mode);

}  // namespace crm::pg::trigger_stats

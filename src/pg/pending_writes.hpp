// Batched writes of the customers triggers for the customers that the chat
// sync creates (crm_native.sync_batch_writes; docs/customer_sync.md,
// "Batched writes of new customers").
//
// A chat statement that creates many customers (a bulk import) used to run,
// per new customer, one INSERT of its 'created' event, one of its matching
// keys and one of its audit row (the last two from the AFTER INSERT triggers
// on customers), each paying executor start-up, CHECK-constraint parsing and
// trigger-queue work of its own (about 13% of a 10,000-customer import,
// docs/benchmark.md). Instead, the sync buffers the event, and while
// the sync's own INSERT of a customer fires the customers triggers, they
// append their rows to the same per-transaction buffer; the buffer is written
// set-wise (one INSERT per table) when the statement's executor run ends -
// before the statement's AFTER ROW triggers fire, so everything after it sees
// the same rows as before.
//
// The buffer is written earlier ("flushed") whenever anything could observe
// its absence or reorder around it:
//   * any other invocation of the native customers triggers (an UPDATE or
//     DELETE of a customer, an INSERT that the sync did not make);
//   * a chat that matches by a key still in the buffer (the lookup must find
//     the customer created by an earlier chat of the same statement), and any
//     chat that updates an existing customer, and the lifecycle trigger (their
//     audit rows and events keep their place after the pending ones);
//   * the end of the statement (ExecutorRun), of a utility statement (COPY)
//     or of an ExecutorFinish that ran deeper.
// The rows, their order within each table, their ids and their contents are
// exactly those the row-by-row triggers write. Subtransaction abort drops
// what the aborted subtransaction added and re-queues what it had written
// for older rows; transaction abort drops everything. Only statements planned
// for more than one row batch; a single chat takes the row-by-row path.
//
// C-style like the triggers: backend calls that ereport, no C++ objects with
// destructors in these frames.
#pragma once

#include "pg/customer_triggers.hpp"

extern "C" {
#include "utils/uuid.h"
}

namespace crm::pg::pending {

// _PG_init: the GUC crm_native.sync_batch_writes, executor and utility
// hooks, transaction callbacks.
void initialize();

// The hash of a matching key (company, key slot 0 email / 1 phone / 2 name,
// normalized value): the sync's key lock tag and the buffer's key set.
uint64 key_hash(const pg_uuid_t* company, int slot, const char* key, int len);

// Sync side. begin_sync_create() before the sync's INSERT of a new customer:
// true when the customers triggers that INSERT fires may buffer their rows
// (batching on, and the chat's statement is a running executor this module
// saw start, planned for more than one row: a single chat has nothing to
// batch). end_sync_create() afterwards (also when begin returned false).
bool begin_sync_create();
void end_sync_create();

// True when a key with this hash is in the buffer (false positives possible,
// never false negatives): the sync then flushes before its lookup.
bool key_pending(uint64 hash);

// True when anything is buffered.
bool any_pending();

// Writes everything buffered, set-wise. No-op when nothing is buffered or a
// flush is already running further up the stack.
void flush();

// Customers trigger side: true when this trigger event is the AFTER INSERT of
// the customer the sync is creating right now, so its rows may be buffered.
bool defer_this_event(TriggerData* data);

// Buffer the matching keys of a new customer (slots: 0 email, 1 phone,
// 2 name; texts are copied).
void add_keys(Relation rel, Datum customer_id, Datum company_id, const int* slots, const Datum* key_types,
              const Datum* raw, const Datum* normalized, int n);

// Buffer the INSERT audit row of a new customer (the row image is copied).
void add_audit(Relation rel, Datum record_id, bool record_id_null, Datum company_id, bool company_id_null,
               HeapTuple row, Datum user_id, bool user_id_null);

// Sync side: buffer the 'created' event {source: 'chat', session_id} of the
// customer just created in customers_relid (begin_sync_create() said yes).
void add_created_event(Oid customers_relid, Datum customer_id, Datum company_id, Datum session_id,
                       bool session_id_null);

}  // namespace crm::pg::pending

// See trigger_stats.hpp and docs/observe.md.
//
// Shared state: a fixed array of entries, one per (database, trigger
// function, table), under one LWLock (shared to look an entry up, exclusive
// to add one or to reset), each entry's counters under its own spinlock.
// Entries never move; a reset empties the array and bumps a generation
// number, which makes every backend drop its cache of entry slots. A sample
// whose entry was reset meanwhile is dropped (its key no longer matches).
//
// C-style throughout: backend calls may ereport, so no C++ object with a
// destructor lives in these frames, and nothing throws.

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "commands/trigger.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}
#pragma GCC diagnostic pop

#include <cstring>
#include <ctime>

#include "core/latency_histogram.hpp"
#include "pg/trigger_stats.hpp"

namespace {

using crm::core::kLatencyBuckets;

constexpr int kMaxEntries = 256;
constexpr int kNameLen = 2 * NAMEDATALEN + 2;  // "schema.name"
constexpr int kMaxDepth = 32;                  // nested measured calls with their own counters
constexpr int kCacheSize = 32;                 // entry slots a backend remembers
const char* const kShmemName = "crm_native trigger stats";

struct Counters {
    uint64 calls;
    uint64 rows;
    uint64 errors;
    uint64 serialization_failures;
    uint64 total_ns;
    uint64 min_ns;
    uint64 max_ns;
    uint64 created;
    uint64 matched;
    uint64 unlinked[2];  // by crm::pg::trigger_stats::Unlinked
    uint64 lock_waits;
    uint64 lock_wait_ns;
    uint64 histogram[kLatencyBuckets];
};

struct Entry {
    slock_t mutex;  // protects key and counters
    Oid dbid;       // key: InvalidOid when the slot is empty
    Oid fnoid;
    Oid relid;
    char function_name[kNameLen];
    char table_name[kNameLen];
    Counters c;
};

struct SharedState {
    LWLock* lock;  // num_entries and the keys: shared to read, exclusive to change
    int num_entries;
    pg_atomic_uint64 generation;  // bumped by every reset
    pg_atomic_uint64 dropped;     // calls not counted: the table was full
    TimestampTz stats_reset;
    Entry entries[kMaxEntries];
};

SharedState* state = nullptr;
bool stats_enabled = true;  // crm_native.trigger_stats
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

// What one measured call decided (customer_sync's counters), innermost last.
struct Frame {
    uint64 created;
    uint64 matched;
    uint64 unlinked[2];
    uint64 lock_waits;
    uint64 lock_wait_ns;
    uint64 waiting_since;  // now_ns() when the wait under way began; 0: none
    bool counted;          // false: an uncounted call, whose decisions are nobody's
};
Frame frames[kMaxDepth];
int depth = 0;  // native trigger calls under way inside a counted one (frames for the first kMaxDepth)
bool error_counted = false;  // the error unwinding now was counted by an inner call
uint64 counted_error = 0;     // its fingerprint (error_fingerprint)

struct CacheSlot {
    Oid fnoid;
    Oid relid;
    int slot;        // -1: the table was full
    uint64 full_at;  // relcache_invalidations then
};
CacheSlot cache[kCacheSize];
int cache_used = 0;
int cache_next = 0;
uint64 cache_generation = 0;

uint64 now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64>(ts.tv_sec) * UINT64CONST(1000000000) + static_cast<uint64>(ts.tv_nsec);
}

void request_shmem() {
    if (prev_shmem_request_hook != nullptr) prev_shmem_request_hook();
    RequestAddinShmemSpace(sizeof(SharedState));
    RequestNamedLWLockTranche(kShmemName, 1);
}

void startup_shmem() {
    if (prev_shmem_startup_hook != nullptr) prev_shmem_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    state = static_cast<SharedState*>(ShmemInitStruct(kShmemName, sizeof(SharedState), &found));
    if (!found) {
        std::memset(static_cast<void*>(state), 0, sizeof(SharedState));
        state->lock = &(GetNamedLWLockTranche(kShmemName))->lock;
        pg_atomic_init_u64(&state->generation, 0);
        pg_atomic_init_u64(&state->dropped, 0);
        state->stats_reset = GetCurrentTimestamp();
        for (int i = 0; i < kMaxEntries; i++) SpinLockInit(&state->entries[i].mutex);
    }
    LWLockRelease(AddinShmemInitLock);
}

bool key_is(const Entry* e, Oid fnoid, Oid relid) {
    return e->dbid == MyDatabaseId && e->fnoid == fnoid && e->relid == relid;
}

// "schema.name" of a function or relation, at entry creation (catalog
// lookups: done before any lock is taken).
void qualified_name(char* out, Oid nsp, const char* name) {
    const char* schema = OidIsValid(nsp) ? get_namespace_name(nsp) : nullptr;
    snprintf(out, kNameLen, "%s.%s", schema != nullptr ? schema : "?", name != nullptr ? name : "?");
}

// Makes slot e the entry of (this database, fnoid, relid), counts zeroed.
// The caller holds the lock exclusively.
void claim(Entry* e, Oid fnoid, Oid relid, const char* function_name, const char* table_name) {
    SpinLockAcquire(&e->mutex);
    std::memset(&e->c, 0, sizeof e->c);
    e->dbid = MyDatabaseId;
    e->fnoid = fnoid;
    e->relid = relid;
    std::memcpy(e->function_name, function_name, kNameLen);
    std::memcpy(e->table_name, table_name, kNameLen);
    SpinLockRelease(&e->mutex);
}

// Relcache invalidations seen by this backend: a relation dropped anywhere
// sends one. A "table full" answer is remembered until the next one, when a
// slot of a dropped relation may be free to take.
uint64 relcache_invalidations = 0;
void note_relcache_invalidation(Datum, Oid) { relcache_invalidations++; }

// A slot of this database whose table no longer exists (a dropped partition,
// say), taken over for (fnoid, relid); -1 when there is none. The slot is
// taken only if its key is still the one read.
//
// A table created in a transaction still open elsewhere is not in this
// backend's catalog snapshot either, nor is one whose DROP has not committed
// yet; their transactions hold the table's AccessExclusiveLock until they end.
// So a table is taken for gone only if that lock can be had at once and the
// catalog, read again after taking it, still lacks the table. This
// transaction's own DROP (which a rollback undoes) holds that lock too, so a
// table this transaction locked exclusively is not gone either. A lock table
// out of memory answers "not gone" rather than failing the trigger's
// statement for the sake of statistics.
bool table_is_gone(Oid relid) {
    if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid))) return false;
    LOCKTAG tag;
    SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
    if (LockHeldByMe(&tag, AccessExclusiveLock)) return false;
    LOCALLOCK* local_lock = nullptr;
    LockAcquireResult acquired = LockAcquireExtended(&tag, AccessShareLock, false, true, false, &local_lock);
    if (acquired == LOCKACQUIRE_NOT_AVAIL) return false;
    if (acquired != LOCKACQUIRE_ALREADY_CLEAR) {
        AcceptInvalidationMessages();  // as LockRelationOid: see commits up to the lock
        MarkLockClear(local_lock);
    }
    bool gone = !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid));
    LockRelease(&tag, AccessShareLock, false);
    return gone;
}

int take_dropped_slot(Oid fnoid, Oid relid, const char* function_name, const char* table_name) {
    struct Candidate {
        int slot;
        Oid fnoid;
        Oid relid;
    } candidates[kMaxEntries];
    int n = 0;
    LWLockAcquire(state->lock, LW_SHARED);
    for (int i = 0; i < state->num_entries; i++) {
        const Entry* e = &state->entries[i];
        if (e->dbid == MyDatabaseId) candidates[n++] = {i, e->fnoid, e->relid};
    }
    LWLockRelease(state->lock);
    for (int i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        if (!table_is_gone(candidates[i].relid)) continue;
        int taken = -1;
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        Entry* e = &state->entries[candidates[i].slot];
        if (key_is(e, candidates[i].fnoid, candidates[i].relid)) {
            claim(e, fnoid, relid, function_name, table_name);
            taken = candidates[i].slot;
        }
        LWLockRelease(state->lock);
        if (taken >= 0) return taken;
    }
    return -1;
}

// The entry slot of (this database, fnoid, relid), created when new, or
// taken over from a dropped table when the table is full; -1 when full.
pg_noinline int find_entry(Oid fnoid, Oid relid) {
    static bool watching = false;
    if (!watching) {
        CacheRegisterRelcacheCallback(note_relcache_invalidation, (Datum)0);
        watching = true;
    }
    uint64 generation = pg_atomic_read_u64(&state->generation);
    if (generation != cache_generation) {
        cache_used = 0;
        cache_next = 0;
        cache_generation = generation;
    }
    for (int i = 0; i < cache_used; i++)
        if (cache[i].fnoid == fnoid && cache[i].relid == relid &&
            (cache[i].slot >= 0 || cache[i].full_at == relcache_invalidations))
            return cache[i].slot;

    int slot = -1;
    LWLockAcquire(state->lock, LW_SHARED);
    for (int i = 0; i < state->num_entries && slot < 0; i++)
        if (key_is(&state->entries[i], fnoid, relid)) slot = i;
    LWLockRelease(state->lock);
    if (slot < 0) {
        char function_name[kNameLen];
        char table_name[kNameLen];
        qualified_name(function_name, get_func_namespace(fnoid), get_func_name(fnoid));
        qualified_name(table_name, get_rel_namespace(relid), get_rel_name(relid));
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        for (int i = 0; i < state->num_entries && slot < 0; i++)
            if (key_is(&state->entries[i], fnoid, relid)) slot = i;
        if (slot < 0 && state->num_entries < kMaxEntries) {
            slot = state->num_entries;
            claim(&state->entries[slot], fnoid, relid, function_name, table_name);
            state->num_entries++;
        }
        LWLockRelease(state->lock);
        if (slot < 0) slot = take_dropped_slot(fnoid, relid, function_name, table_name);
    }
    // Remembered, a "full" answer too: a full table must not cost every
    // call catalog lookups and the exclusive lock.
    CacheSlot* c = nullptr;
    for (int i = 0; i < cache_used && c == nullptr; i++)
        if (cache[i].fnoid == fnoid && cache[i].relid == relid) c = &cache[i];
    if (c == nullptr) c = &cache[cache_used < kCacheSize ? cache_used++ : cache_next++ % kCacheSize];
    c->fnoid = fnoid;
    c->relid = relid;
    c->slot = slot;
    c->full_at = relcache_invalidations;
    return slot;
}

int64 rows_of(const TriggerData* td) {
    if (TRIGGER_FIRED_FOR_ROW(td->tg_event)) return 1;
    if (td->tg_newtable != nullptr) return tuplestore_tuple_count(td->tg_newtable);
    if (td->tg_oldtable != nullptr) return tuplestore_tuple_count(td->tg_oldtable);
    return 0;
}

// Adds one finished call to its entry. Runs in PG_CATCH too: no allocation,
// no catalog access, nothing that can fail.
void record(int slot, Oid fnoid, Oid relid, int64 rows, uint64 start_ns, const Frame* f, bool error,
            bool serialization) {
    uint64 ns = now_ns() - start_ns;
    size_t bucket = crm::core::latency_bucket(ns);
    Entry* e = &state->entries[slot];
    SpinLockAcquire(&e->mutex);
    bool same = key_is(e, fnoid, relid);
    if (same) {
        Counters* c = &e->c;
        if (c->calls == 0 || ns < c->min_ns) c->min_ns = ns;
        if (ns > c->max_ns) c->max_ns = ns;
        c->calls++;
        c->rows += static_cast<uint64>(rows);
        c->total_ns += ns;
        c->histogram[bucket]++;
        if (error) c->errors++;
        if (serialization) c->serialization_failures++;
        c->created += f->created;
        c->matched += f->matched;
        c->unlinked[0] += f->unlinked[0];
        c->unlinked[1] += f->unlinked[1];
        c->lock_waits += f->lock_waits;
        c->lock_wait_ns += f->lock_wait_ns;
    }
    SpinLockRelease(&e->mutex);
    if (!same) cache_used = 0;  // reset meanwhile: look the entry up again next time
}

Frame* current() { return depth > 0 && depth <= kMaxDepth && frames[depth - 1].counted ? &frames[depth - 1] : nullptr; }

// A call that is not counted (a temporary table's, one past kMaxDepth, one
// whose table found no entry) inside a counted one: what it creates, matches
// or waits for is not the enclosing call's (a 45-deep recursion credited
// every level past the 32nd to the 32nd; found by an independent review).
Datum uncounted(FunctionCallInfo fcinfo, PGFunction body) {
    if (depth == 0) return body(fcinfo);  // no enclosing counted call
    if (depth < kMaxDepth) frames[depth].counted = false;
    depth++;
    volatile Datum result = 0;
    PG_TRY();
    {
        result = body(fcinfo);
    }
    PG_FINALLY();
    {
        depth--;
    }
    PG_END_TRY();
    return result;
}

void require_state(const char* what) {
    if (state == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("%s needs crm_native in shared_preload_libraries", what),
                        errdetail("The trigger statistics live in shared memory, which only a library loaded at server "
                                  "start can allocate; this server did not load crm_native that way, so nothing is "
                                  "counted."),
                        errhint("Add crm_native to the libraries already in shared_preload_libraries "
                                "(SHOW shared_preload_libraries; then e.g. ALTER SYSTEM SET shared_preload_libraries "
                                "= 'citus', 'crm_native', one quoted name each) and restart the server.")));
}

}  // namespace

namespace crm::pg::trigger_stats {

void define() {
    DefineCustomBoolVariable(
        "crm_native.trigger_stats", "Counts calls, rows and time of the native triggers in shared memory.",
        "Needs crm_native in shared_preload_libraries; without it nothing is counted whatever this says. "
        "Off: the triggers run exactly as without the statistics.",
        &stats_enabled, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    if (!process_shared_preload_libraries_in_progress) return;
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = request_shmem;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = startup_shmem;
}

// What tells one error from another: its SQLSTATE, the source position that
// raised it and its message. An error re-thrown on the way out (a PL/pgSQL
// block without a matching handler) keeps all three; a new one raised
// after an exception block caught the inner one (in the same statement)
// has its own. Out of memory is not copied (that could fail again).
uint64 error_fingerprint(MemoryContext cxt) {
    const int code = geterrcode();
    if (code == ERRCODE_OUT_OF_MEMORY) return static_cast<uint64>(code);
    MemoryContext old = MemoryContextSwitchTo(cxt);  // not ErrorContext
    ErrorData* e = CopyErrorData();
    uint64 h = hash_bytes_extended(reinterpret_cast<const unsigned char*>(&code), sizeof code,
                                   static_cast<uint64>(e->lineno));
    if (e->filename != nullptr)
        h = hash_bytes_extended(reinterpret_cast<const unsigned char*>(e->filename), std::strlen(e->filename), h);
    if (e->message != nullptr)
        h = hash_bytes_extended(reinterpret_cast<const unsigned char*>(e->message), std::strlen(e->message), h);
    FreeErrorData(e);
    MemoryContextSwitchTo(old);
    return h;
}

Datum measured(FunctionCallInfo fcinfo, PGFunction body) {
    if (state == nullptr || !stats_enabled || !CALLED_AS_TRIGGER(fcinfo) || depth >= kMaxDepth)
        return uncounted(fcinfo, body);
    const TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    // A temporary table's triggers are not counted: any role can create
    // them, and they would fill the shared table's slots for its session.
    if (td->tg_relation->rd_rel->relpersistence == RELPERSISTENCE_TEMP) return uncounted(fcinfo, body);
    const Oid fnoid = fcinfo->flinfo->fn_oid;
    const Oid relid = RelationGetRelid(td->tg_relation);
    const int slot = find_entry(fnoid, relid);
    if (slot < 0) {
        pg_atomic_fetch_add_u64(&state->dropped, 1);
        return uncounted(fcinfo, body);
    }
    const int64 rows = rows_of(td);
    Frame* const frame = &frames[depth];
    std::memset(frame, 0, sizeof *frame);
    frame->counted = true;
    depth++;
    error_counted = false;
    const uint64 start = now_ns();
    MemoryContext caller = CurrentMemoryContext;
    volatile Datum result = 0;
    PG_TRY();
    {
        result = body(fcinfo);
    }
    PG_CATCH();
    {
        if (frame->waiting_since != 0) frame->lock_wait_ns += now_ns() - frame->waiting_since;
        depth--;
        const uint64 fingerprint = error_fingerprint(caller);
        const bool count_error = !(error_counted && fingerprint == counted_error);
        error_counted = true;
        counted_error = fingerprint;
        record(slot, fnoid, relid, rows, start, frame, count_error,
               count_error && geterrcode() == ERRCODE_T_R_SERIALIZATION_FAILURE);
        PG_RE_THROW();
    }
    PG_END_TRY();
    depth--;
    record(slot, fnoid, relid, rows, start, frame, false, false);
    return result;
}

void statement_completed() {
    error_counted = false;
}

void customer_created() {
    if (Frame* f = current()) f->created++;
}

void customer_matched() {
    if (Frame* f = current()) f->matched++;
}

void chat_unlinked(Unlinked reason) {
    if (Frame* f = current()) f->unlinked[static_cast<int>(reason)]++;
}

bool normalized(bool ok, bool unlinked) {
    if (!ok && unlinked) chat_unlinked(Unlinked::NormalizeFailed);
    return ok;
}

int lock_acquire(const LOCKTAG* tag, int mode) {
    Frame* f = state != nullptr ? current() : nullptr;
    if (f == nullptr) return LockAcquire(tag, mode, false, false);
    LockAcquireResult r = LockAcquire(tag, mode, false, true);
    if (r != LOCKACQUIRE_NOT_AVAIL) return r;
    // Counted before it blocks: a wait that ends in an error (lock_timeout,
    // a cancel, a deadlock) is counted too, its time by measured()'s catch
    // (found by an independent tester).
    f->lock_waits++;
    f->waiting_since = now_ns();
    r = LockAcquire(tag, mode, false, false);
    f->lock_wait_ns += now_ns() - f->waiting_since;
    f->waiting_since = 0;
    return r;
}

}  // namespace crm::pg::trigger_stats

// ---------------------------------------------------------------------------
// SQL interface: crm_native._trigger_stats(), trigger_stats_reset(),
// trigger_stats_info() (src/sql/80_observe.sql)
// ---------------------------------------------------------------------------

extern "C" {
PG_FUNCTION_INFO_V1(crm_trigger_stats);
Datum crm_trigger_stats(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(crm_trigger_stats_reset);
Datum crm_trigger_stats_reset(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(crm_trigger_stats_info);
Datum crm_trigger_stats_info(PG_FUNCTION_ARGS);
}

namespace {
constexpr int kStatsColumns = 22;
double ms(uint64 ns) { return static_cast<double>(ns) / 1e6; }
}  // namespace

Datum crm_trigger_stats(PG_FUNCTION_ARGS) {
    require_state("crm_native.trigger_stats");
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (rsinfo->setDesc->natts != kStatsColumns)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("crm_native._trigger_stats: declared with %d columns, expected %d", rsinfo->setDesc->natts,
                               kStatsColumns)));
    // Copied under the lock, returned after it: the rows go into a
    // tuplestore, which may write a temporary file, and every new table's
    // first call waits for the lock exclusively meanwhile.
    Entry* const copies = static_cast<Entry*>(palloc(sizeof(Entry) * kMaxEntries));
    LWLockAcquire(state->lock, LW_SHARED);
    const int entries = state->num_entries;
    for (int i = 0; i < entries; i++) {
        Entry* e = &state->entries[i];
        SpinLockAcquire(&e->mutex);
        std::memcpy(static_cast<void*>(&copies[i]), static_cast<const void*>(e), sizeof(Entry));
        SpinLockRelease(&e->mutex);
    }
    LWLockRelease(state->lock);
    for (int i = 0; i < entries; i++) {
        const Entry* copy = &copies[i];
        if (copy->dbid == InvalidOid || copy->c.calls == 0) continue;
        const Counters* c = &copy->c;
        Datum values[kStatsColumns];
        bool nulls[kStatsColumns];
        std::memset(nulls, 0, sizeof nulls);
        int n = 0;
        values[n++] = ObjectIdGetDatum(copy->dbid);
        values[n++] = ObjectIdGetDatum(copy->fnoid);
        values[n++] = ObjectIdGetDatum(copy->relid);
        values[n++] = CStringGetTextDatum(copy->function_name);
        values[n++] = CStringGetTextDatum(copy->table_name);
        values[n++] = Int64GetDatum(static_cast<int64>(c->calls));
        values[n++] = Int64GetDatum(static_cast<int64>(c->rows));
        values[n++] = Int64GetDatum(static_cast<int64>(c->errors));
        values[n++] = Int64GetDatum(static_cast<int64>(c->serialization_failures));
        values[n++] = Float8GetDatum(ms(c->total_ns));
        values[n++] = Float8GetDatum(ms(c->min_ns));
        values[n++] = Float8GetDatum(ms(c->max_ns));
        values[n++] = Float8GetDatum(crm::core::latency_percentile(c->histogram, kLatencyBuckets, 0.50, c->min_ns, c->max_ns) / 1e6);
        values[n++] = Float8GetDatum(crm::core::latency_percentile(c->histogram, kLatencyBuckets, 0.95, c->min_ns, c->max_ns) / 1e6);
        values[n++] = Float8GetDatum(crm::core::latency_percentile(c->histogram, kLatencyBuckets, 0.99, c->min_ns, c->max_ns) / 1e6);
        values[n++] = Int64GetDatum(static_cast<int64>(c->created));
        values[n++] = Int64GetDatum(static_cast<int64>(c->matched));
        values[n++] = Int64GetDatum(static_cast<int64>(c->unlinked[0]));
        values[n++] = Int64GetDatum(static_cast<int64>(c->unlinked[1]));
        values[n++] = Int64GetDatum(static_cast<int64>(c->lock_waits));
        values[n++] = Float8GetDatum(ms(c->lock_wait_ns));
        values[n++] = BoolGetDatum(copy->dbid == MyDatabaseId);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    pfree(copies);
    return (Datum)0;
}

Datum crm_trigger_stats_reset(PG_FUNCTION_ARGS) {
    (void)fcinfo;
    require_state("crm_native.trigger_stats_reset()");
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    for (int i = 0; i < state->num_entries; i++) {
        Entry* e = &state->entries[i];
        SpinLockAcquire(&e->mutex);
        e->dbid = InvalidOid;
        e->fnoid = InvalidOid;
        e->relid = InvalidOid;
        std::memset(&e->c, 0, sizeof e->c);
        SpinLockRelease(&e->mutex);
    }
    state->num_entries = 0;
    pg_atomic_write_u64(&state->dropped, 0);
    state->stats_reset = GetCurrentTimestamp();
    pg_atomic_fetch_add_u64(&state->generation, 1);
    LWLockRelease(state->lock);
    PG_RETURN_VOID();
}

// (entries, max_entries, dropped_calls, stats_reset)
Datum crm_trigger_stats_info(PG_FUNCTION_ARGS) {
    require_state("crm_native.trigger_stats_info()");
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("crm_native.trigger_stats_info: not a composite type")));
    desc = BlessTupleDesc(desc);
    Datum values[4];
    bool nulls[4] = {false, false, false, false};
    LWLockAcquire(state->lock, LW_SHARED);
    values[0] = Int32GetDatum(state->num_entries);
    values[1] = Int32GetDatum(kMaxEntries);
    values[2] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&state->dropped)));
    values[3] = TimestampTzGetDatum(state->stats_reset);
    LWLockRelease(state->lock);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

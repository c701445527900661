// crm_native.customer_sync(): the native "VC Usage" -> customers sync trigger
// (docs/contract.md, "Customer sync"; docs/customer_sync.md).
//
// Its statements are the data-access layer's (store.hpp, store_sql.cpp).
//
// Written C-style on purpose: it calls SPI and the lock manager, which report
// errors with ereport (longjmp), so no C++ object with a destructor lives in
// any frame of this file. Normalization goes through the noexcept bridge
// crm::pg::normalize_key.
//
// Per chat row, in the common case (a returning customer whose key has one
// holder and who lacks nothing the chat brings): one probe of the keys and
// one SELECT ... FOR NO KEY UPDATE of the holder that also checks it is the match
// (touch_holder); the customer row is not written. When the chat fills
// missing contact info: a read of the holder (or the full per-key lookup),
// its key locks, the lookup again, one UPDATE (updated_at, the filled
// contact info) and its 'contact_info_added' event. A new customer costs the
// probe twice (before and after the key locks), the customer's INSERT and
// its 'created' event.
// A chat that arrives linked (or whose link or company an UPDATE changes)
// costs one primary-key read: the customer must be a live customer of the
// chat's company (docs/contract.md, sync step 1).

// The lock manager's headers (storage/lock.h, storage/proc.h) pull in
// s_lock.h and atomics, which are not clean C++17 under -Wall -Wextra.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/uuid.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
}
#pragma GCC diagnostic pop

#include <cstdio>
#include <cstring>

#include "core/message.hpp"
#include "pg/customer_sync.hpp"
#include "pg/guard.hpp"
#include "pg/module.hpp"
#include "pg/normalize.hpp"
#include "pg/store.hpp"
#include "pg/trigger_stats.hpp"  // trigger_stats

namespace {

using crm::pg::KeyType;
using crm::pg::NormalizeResult;
namespace store = crm::pg::store;
using store::Statement;
using store::Table;

// ---------------------------------------------------------------------------
// Tunables
// ---------------------------------------------------------------------------

// Longest merged_into_customer_id chain followed to the surviving customer.
constexpr int kMaxMergeHops = 64;
// Lookups redone when the matched customer changed under us (READ COMMITTED).
constexpr int kMaxAttempts = 8;
// Waits for another creator's key lock in one chat's sync. Each wait hands
// a lock over, so a chat needs one per creator ahead of it; two chats with
// the same two keys, each keeping the key the other wants next, could swap
// them forever in lock step (an independent review), so past this many
// the chat fails with a serialization failure.
constexpr int kMaxLockWaits = 1000;

// Key locks one transaction takes before it switches to the single bulk lock
// (crm_native.sync_key_lock_limit): bounds the shared lock table use of bulk
// imports that create many customers.
int sync_key_lock_limit = 256;

// Advisory lock classes (pg_locks.objsubid). PostgreSQL's own SQL advisory
// functions use 1 and 2, so the application's advisory locks never collide.
constexpr uint16 kKeyLockClass = 0x4352;   // one key: (company, key type, key)
constexpr uint16 kBulkLockClass = 0x4353;  // all keys of one company

// ---------------------------------------------------------------------------
// Per-relation cache: attribute numbers
// ---------------------------------------------------------------------------

enum KeySlot { kEmail = 0, kPhone = 1, kName = 2, kKeySlots = 3 };
const char* const kKeyTypeName[kKeySlots] = {"email", "phone", "name"};
const KeyType kKeyTypes[kKeySlots] = {KeyType::Email, KeyType::Phone, KeyType::Name};
const Statement kLookup[kKeySlots] = {Statement::SyncLookupEmail, Statement::SyncLookupPhone,
                                      Statement::SyncLookupName};

struct SyncTarget {
    Oid relid;  // hash key: the "VC Usage" relation
    bool attrs_valid;
    AttrNumber att_company_id;   // checked (uuid): every call reads it
    AttrNumber att_customer_id;  // checked (uuid): every call reads it
    // Read only when the row is synced: their names looked up for every
    // call (an UPDATE syncs when it sets one), their types checked by
    // sync_columns() before a sync. An UPDATE of other columns does not
    // fail on them (an application's migration of customer_phone to
    // another type broke every chat UPDATE; found by an independent tester).
    AttrNumber att_contact[kKeySlots];  // customer_email, customer_phone, customer_name
    AttrNumber att_session_id;
    bool sync_columns_checked;
};

HTAB* sync_targets = nullptr;

void invalidate_relation(Datum, Oid relid) {
    if (sync_targets == nullptr) return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, sync_targets);
    SyncTarget* t;
    while ((t = static_cast<SyncTarget*>(hash_seq_search(&status))) != nullptr)
        if (relid == InvalidOid || t->relid == relid) t->attrs_valid = false;
}

void forget_dropped(bool (*gone)(Oid)) { store::forget_gone_entries(sync_targets, gone); }

SyncTarget* get_target(Relation rel) {
    if (sync_targets == nullptr) {
        HASHCTL ctl;
        std::memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(Oid);
        ctl.entrysize = sizeof(SyncTarget);
        ctl.hcxt = TopMemoryContext;
        sync_targets = hash_create("crm_native customer sync targets", 8, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
        CacheRegisterRelcacheCallback(invalidate_relation, 0);
        store::on_dropped_relations(forget_dropped);
    }
    Oid relid = RelationGetRelid(rel);
    bool found;
    SyncTarget* t = static_cast<SyncTarget*>(hash_search(sync_targets, &relid, HASH_ENTER, &found));
    if (!found) {
        std::memset(t, 0, sizeof *t);
        t->relid = relid;
    }
    if (!t->attrs_valid) {
        const char* trigger = "crm_native.customer_sync";
        t->att_company_id = store::require_column(trigger, rel, Table::Chats, "company_id");
        t->att_customer_id = store::require_column(trigger, rel, Table::Chats, "customer_id");
        t->att_contact[kEmail] = store::column_number(rel, "customer_email");
        t->att_contact[kPhone] = store::column_number(rel, "customer_phone");
        t->att_contact[kName] = store::column_number(rel, "customer_name");
        t->att_session_id = store::column_number(rel, "session_id");
        t->sync_columns_checked = false;
        t->attrs_valid = true;
    }
    return t;
}

// Before a sync: the contact columns and session_id exist with types the
// sync reads (the clear error of require_column() otherwise).
void sync_columns(SyncTarget* t, Relation rel) {
    if (t->sync_columns_checked) return;
    const char* trigger = "crm_native.customer_sync";
    t->att_contact[kEmail] = store::require_column(trigger, rel, Table::Chats, "customer_email");
    t->att_contact[kPhone] = store::require_column(trigger, rel, Table::Chats, "customer_phone");
    t->att_contact[kName] = store::require_column(trigger, rel, Table::Chats, "customer_name");
    t->att_session_id = store::require_column(trigger, rel, Table::Chats, "session_id");
    t->sync_columns_checked = true;
}

// ---------------------------------------------------------------------------
// One chat row
// ---------------------------------------------------------------------------

struct ChatRow {
    Relation rel;  // the chat table: its schema names the CRM tables
    Datum company_id;
    pg_uuid_t company;
    Datum contact[kKeySlots];  // raw text, as given
    bool contact_null[kKeySlots];
    bool has_key[kKeySlots];   // normalized to a non-empty key
    Datum key[kKeySlots];      // normalized key (text)
    Datum session_id;
    bool session_id_null;
};

// The customer a chat is linked to (the surviving end of a merge chain) and
// what it lacks.
struct Match {
    bool found;
    pg_uuid_t id;
    bool email_missing;
    bool phone_missing;
    bool touched;  // found, and already locked (nothing to fill): see touch_holder
};

// Which key types this row matches by: email, else phone, else (only with
// neither) name.
bool matches_by(const ChatRow* row, int k) {
    if (!row->has_key[k]) return false;
    if (k == kName) return !row->has_key[kEmail] && !row->has_key[kPhone];
    return true;
}


bool get_bool(uint64 rowno, int col) {
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[rowno], SPI_tuptable->tupdesc, col, &isnull);
    return !isnull && DatumGetBool(d);
}

bool get_uuid(uint64 rowno, int col, pg_uuid_t* out) {
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[rowno], SPI_tuptable->tupdesc, col, &isnull);
    if (isnull) return false;
    std::memcpy(out->data, DatumGetUUIDP(d)->data, UUID_LEN);
    return true;
}

uint64 run_select(const ChatRow* row, Statement statement, Datum* values, const char* nulls, Snapshot snapshot,
                  long tcount) {
    return store::run(row->rel, statement, values, nulls, tcount, snapshot);
}

// A key holder: live (the lookup only returns live customers), with its first
// merge hop.
struct Candidate {
    pg_uuid_t id;
    bool merged;
    pg_uuid_t merged_into;
    bool email_missing;
    bool phone_missing;
};

void read_candidate(uint64 rowno, Candidate* c) {
    get_uuid(rowno, 1, &c->id);
    c->merged = get_uuid(rowno, 2, &c->merged_into);
    c->email_missing = get_bool(rowno, 3);
    c->phone_missing = get_bool(rowno, 4);
}

// Numbers each chat row the sync reads, so that a warning the lookups of one
// chat would repeat (they run up to four times) is given once.
uint64 chat_serial = 0;
uint64 long_chain_warned = 0;  // chat_serial when a long merge chain was last reported

// The surviving customer of a candidate: the end of its merged_into chain,
// which must be a live customer of the same company. False when the chain
// ends at a soft-deleted customer, leaves the company (or this role's view),
// loops, or is longer than kMaxMergeHops.
bool resolve_survivor(const ChatRow* row, const Candidate* c, Match* m, Snapshot snapshot) {
    m->id = c->id;
    m->email_missing = c->email_missing;
    m->phone_missing = c->phone_missing;
    if (!c->merged) return true;
    pg_uuid_t seen[kMaxMergeHops + 1];
    int nseen = 0;
    seen[nseen++] = c->id;
    pg_uuid_t next = c->merged_into;
    for (;;) {
        for (int i = 0; i < nseen; i++)
            if (std::memcmp(seen[i].data, next.data, UUID_LEN) == 0) return false;  // a cycle
        if (nseen > kMaxMergeHops) {
            // Not silently: the chat goes to another holder or a new
            // customer, who then holds the key for good (found by an
            // independent tester). A cycle or a dead end is the data's
            // answer; a long chain is only past what the sync follows.
            if (long_chain_warned == chat_serial) return false;
            long_chain_warned = chat_serial;
            ereport(WARNING,
                    (errcode(ERRCODE_WARNING),
                     errmsg("crm_native: customer sync passed over customer %s: its merge chain is longer than %d "
                            "customers",
                            DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&c->id))), kMaxMergeHops),
                     errdetail("The chat is matched by the key's next holder, or a new customer is created."),
                     errhint("Point the merged customers of that chain at its survivor (merged_into_customer_id); "
                             "crm_native.merge_customers() moves the source's keys, so its merges make no chain.")));
            return false;
        }
        Datum values[2] = {UUIDPGetDatum(&next), row->company_id};
        run_select(row, Statement::SyncChain, values, nullptr, snapshot, 1);
        if (SPI_processed == 0) return false;
        seen[nseen++] = next;
        pg_uuid_t further;
        if (!get_uuid(0, 1, &further)) {
            if (!get_bool(0, 2)) return false;  // the survivor is soft-deleted
            m->id = next;
            m->email_missing = get_bool(0, 3);
            m->phone_missing = get_bool(0, 4);
            return true;
        }
        next = further;
    }
}

// The customer one key matches: the oldest live holder whose merge chain
// resolves; the next-oldest when it does not.
bool lookup_key(const ChatRow* row, int k, Match* m, Snapshot snapshot) {
    Datum values[3] = {row->company_id, row->key[k], Int64GetDatum(1)};
    run_select(row, kLookup[k], values, nullptr, snapshot, 1);
    if (SPI_processed == 0) return false;
    Candidate first;
    read_candidate(0, &first);
    if (resolve_survivor(row, &first, m, snapshot)) return true;

    // Rare: the oldest holder's chain is dead. Try every holder in order.
    const char nulls[4] = {' ', ' ', 'n', '\0'};
    run_select(row, kLookup[k], values, nulls, snapshot, 0);
    uint64 n = SPI_processed;
    Candidate* all = static_cast<Candidate*>(palloc(sizeof(Candidate) * (n > 0 ? n : 1)));
    for (uint64 i = 0; i < n; i++) read_candidate(i, &all[i]);
    for (uint64 i = 0; i < n; i++) {
        CHECK_FOR_INTERRUPTS();
        if (std::memcmp(all[i].id.data, first.id.data, UUID_LEN) == 0) continue;
        if (resolve_survivor(row, &all[i], m, snapshot)) return true;
    }
    return false;
}

// The fast path of a lookup by email/phone. Decided: true, with *m set
// (m->found: matched or not). Undecided (false): a key has several holders,
// or its single holder is gone or its chain does not resolve; the full
// lookup decides.
bool probe_email_or_phone(const ChatRow* row, Match* m, Snapshot snapshot) {
    Datum values[3] = {row->company_id, row->has_key[kEmail] ? row->key[kEmail] : (Datum)0,
                       row->has_key[kPhone] ? row->key[kPhone] : (Datum)0};
    const char nulls[4] = {' ', row->has_key[kEmail] ? ' ' : 'n', row->has_key[kPhone] ? ' ' : 'n', '\0'};
    run_select(row, Statement::SyncProbe, values, nulls, snapshot, 0);
    uint64 n = SPI_processed;
    if (n == 0) return true;  // no holder: not matched
    // The key the full lookup would try first: email when it has a holder.
    int holders[2] = {0, 0};  // email, phone
    pg_uuid_t holder[2];
    for (uint64 i = 0; i < n; i++) {
        int slot = get_bool(i, 1) ? 0 : 1;
        if (holders[slot]++ == 0 && !get_uuid(i, 2, &holder[slot])) return false;
    }
    int slot = holders[0] > 0 ? 0 : 1;
    if (holders[slot] != 1) return false;  // several holders: the oldest wins
    if (snapshot == InvalidSnapshot) {
        // The common returning chat: the holder is the match and lacks
        // nothing the chat brings; lock it now (one statement, not the
        // chain read and then the lock).
        Datum touch_values[4] = {UUIDPGetDatum(&holder[slot]), row->company_id, BoolGetDatum(row->has_key[kEmail]),
                                 BoolGetDatum(row->has_key[kPhone])};
        if (store::run(row->rel, Statement::SyncLockHolder, touch_values, nullptr) == 1) {
            m->id = holder[slot];
            m->found = true;
            m->touched = true;
            return true;
        }
    }
    Datum chain_values[2] = {UUIDPGetDatum(&holder[slot]), row->company_id};
    run_select(row, Statement::SyncChain, chain_values, nullptr, snapshot, 1);
    if (SPI_processed == 0 || !get_bool(0, 2)) return false;  // not a live customer of the company
    Candidate c;
    c.id = holder[slot];
    c.merged = get_uuid(0, 1, &c.merged_into);
    c.email_missing = get_bool(0, 3);
    c.phone_missing = get_bool(0, 4);
    if (!resolve_survivor(row, &c, m, snapshot)) return false;
    m->found = true;
    return true;
}

// Looks the row's keys up in order (email, phone, name), with the current
// snapshot (snapshot = InvalidSnapshot) or the given one.
void lookup(const ChatRow* row, Match* m, Snapshot snapshot) {
    std::memset(m, 0, sizeof *m);
    if ((row->has_key[kEmail] || row->has_key[kPhone]) && probe_email_or_phone(row, m, snapshot)) return;
    std::memset(m, 0, sizeof *m);
    if (row->has_key[kEmail] && row->has_key[kPhone]) {
        // One query for the common case; the per-key walk below only when
        // the first candidate's merge chain is dead.
        Datum values[3] = {row->company_id, row->key[kEmail], row->key[kPhone]};
        run_select(row, Statement::SyncLookupEmailOrPhone, values, nullptr, snapshot, 1);
        if (SPI_processed == 0) return;  // neither key is held by a live customer
        Candidate first;
        read_candidate(0, &first);
        if (resolve_survivor(row, &first, m, snapshot)) {
            m->found = true;
            return;
        }
    }
    for (int k = 0; k < kKeySlots; k++) {
        if (!matches_by(row, k)) continue;
        if (lookup_key(row, k, m, snapshot)) {
            m->found = true;
            return;
        }
    }
}

// What the chat would fill on the matched customer: non-empty chat values
// for blank customer fields.
bool fills_email(const ChatRow* row, const Match* m) { return m->email_missing && row->has_key[kEmail]; }
bool fills_phone(const ChatRow* row, const Match* m) { return m->phone_missing && row->has_key[kPhone]; }

// Links to a matched customer. When the chat fills its missing email/phone:
// one UPDATE (the values, updated_at) with its 'contact_info_added' event.
// Otherwise the customer is only locked (FOR NO KEY UPDATE), not written.
// False: the customer changed since it was read (or was deleted or, with
// require_unmerged, merged); read it again.
bool update_customer(const ChatRow* row, const Match* m, bool require_unmerged) {
    bool fill_email = fills_email(row, m);
    bool fill_phone = fills_phone(row, m);
    Datum fields[2];
    int nfields = 0;
    if (fill_email) fields[nfields++] = CStringGetTextDatum("customer_email");
    if (fill_phone) fields[nfields++] = CStringGetTextDatum("customer_phone");
    Datum values[8] = {
        UUIDPGetDatum(&m->id),
        row->company_id,
        fill_email ? row->contact[kEmail] : (Datum)0,
        fill_phone ? row->contact[kPhone] : (Datum)0,
        BoolGetDatum(m->email_missing),
        BoolGetDatum(m->phone_missing),
        nfields > 0 ? PointerGetDatum(construct_array(fields, nfields, TEXTOID, -1, false, TYPALIGN_INT)) : (Datum)0,
        BoolGetDatum(require_unmerged),
    };
    const char nulls[9] = {' ', ' ', fill_email ? ' ' : 'n', fill_phone ? ' ' : 'n', ' ', ' ',
                           nfields > 0 ? ' ' : 'n', ' ', '\0'};
    if (nfields == 0) {
        if (store::run(row->rel, Statement::SyncLockMatch, values, nulls) > 0) return true;
    } else if (store::run(row->rel, Statement::SyncFillContact, values, nulls) > 0) {
        Datum event[3] = {UUIDPGetDatum(&m->id), row->company_id, values[6]};
        store::run(row->rel, Statement::SyncContactEvent, event, "   ");
        return true;
    }
    // No row: the customer changed since it was read, or row-level security
    // lets this role see the customer but not update (so not lock) it: a
    // locking read and an UPDATE see rows through the UPDATE policies too.
    // A plain read under the same conditions tells the two apart. In the
    // second case the chat is linked without the lock and fills nothing, as
    // the plpgsql trigger did (its SELECT ... FOR UPDATE found nothing to
    // fill, and it linked).
    return store::run(row->rel, Statement::SyncMatchVisible, values, nulls) > 0;
}

// The customer created last, and by which local transaction
// (crm::pg::sync::created_in_this_transaction).
LocalTransactionId last_created_lxid = InvalidLocalTransactionId;
pg_uuid_t last_created;

// A new customer, then its 'created' event; its matching keys and audit
// row come from the customers triggers, which run in between (as with the
// plpgsql trigger's two statements). False when no customer was written: an
// application's BEFORE INSERT trigger on customers skipped the row (returned
// NULL). The chat is then stored unlinked, with a WARNING, and no event is
// written (the plpgsql trigger wrote a 'created' event naming no customer).
bool create_customer(const ChatRow* row, pg_uuid_t* out) {
    Datum values[4] = {row->company_id, row->contact[kName], row->contact[kEmail], row->contact[kPhone]};
    const char nulls[5] = {' ', row->contact_null[kName] ? 'n' : ' ', row->contact_null[kEmail] ? 'n' : ' ',
                           row->contact_null[kPhone] ? 'n' : ' ', '\0'};
    if (store::run(row->rel, Statement::SyncCreateCustomer, values, nulls) != 1 || !get_uuid(0, 1, out)) {
        ereport(WARNING, (errcode(ERRCODE_WARNING),
                          errmsg("crm_native: customer sync left this chat row unlinked: the new customer was not "
                                 "written (a BEFORE INSERT trigger on customers skipped it)")));
        return false;
    }
    // A BEFORE INSERT trigger that put the new customer in another company
    // is refused, not followed: the sync would link the chat across
    // companies. (What the application does to the customer afterwards, an
    // AFTER trigger or a rule that moves it, is its own move of a customer
    // with its chats, as under the plpgsql trigger; docs/contract.md.)
    pg_uuid_t company;
    if (!get_uuid(0, 2, &company) ||
        std::memcmp(&company, DatumGetUUIDP(row->company_id), sizeof company) != 0)
        ereport(ERROR, (errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
                        errmsg("crm_native: the chat's new customer was written with another company_id"),
                        errdetail("A BEFORE INSERT trigger on customers changed the company_id the customer sync "
                                  "inserted; the chat would be linked to a customer of another company."),
                        errhint("Application triggers on customers may change other columns of a new customer, "
                                "not company_id.")));
    Datum event[3] = {UUIDPGetDatum(out), row->company_id, row->session_id};
    const char event_nulls[4] = {' ', ' ', row->session_id_null ? 'n' : ' ', '\0'};
    store::run(row->rel, Statement::SyncCreatedEvent, event, event_nulls);
    last_created_lxid = MyProc->lxid;
    last_created = *out;
    return true;
}

// --- Concurrency: key locks -------------------------------------------------
//
// Before a transaction creates a customer it holds, until it ends, an
// exclusive advisory lock per key it matches by; another transaction creating
// a customer with the same key waits for it to end and then looks up again
// (READ COMMITTED sees the new customer; REPEATABLE READ and SERIALIZABLE
// raise a serialization failure, see sync_unlinked). Past
// crm_native.sync_key_lock_limit key locks in one transaction (bulk imports),
// it takes its company's "bulk" lock instead and only waits for current
// holders of each key; every key locker checks its company's bulk lock after
// taking its key locks, so the two protocols always see each other. Every
// lock is scoped to the chat's company (the key hash includes it): one
// tenant's import never delays another tenant's chats (docs/tenancy.md).

// Key locks taken in this transaction, per company (a company's own count
// decides when it switches to its bulk lock, so importing into one company
// never puts another company's new customers behind a bulk lock), and in
// all (past kMaxCompaniesFactor times the limit every company switches: a
// transaction holds at most that many key locks and one bulk lock per
// company it creates customers for; at 16 times, three imports across
// 1,000 companies filled the default shared lock table, 53200).
constexpr int kMaxCompaniesFactor = 2;
struct CompanyKeyLocks {
    pg_uuid_t company;  // hash key
    int taken;
};
HTAB* key_locks_by_company = nullptr;  // in TopTransactionContext: forgotten when it ends
int key_locks_taken = 0;
bool bulk_lock_taken = false;  // some company's, in this transaction

// Which subtransaction took which of the counted locks, in order (ids grow
// within a transaction): a subtransaction that rolls back releases its
// locks, so its counts are taken back. An import that catches each failed
// row's error would otherwise take its company's bulk lock while holding no
// key lock at all, and make the company's other new customers wait (found
// by an independent tester).
struct CountedLocks {
    SubTransactionId subxact;
    CompanyKeyLocks* company;  // dynahash entries never move
    int taken;
};
CountedLocks* counted = nullptr;  // TopTransactionContext
int counted_used = 0;
int counted_size = 0;

// When the transaction ends (its locks with it), not by comparing local
// transaction ids, which wrap (an independent review).
void forget_key_locks(XactEvent event, void*) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT) {
        key_locks_by_company = nullptr;
        key_locks_taken = 0;
        bulk_lock_taken = false;
        counted = nullptr;
        counted_used = counted_size = 0;
    }
}

void forget_rolled_back_key_locks(SubXactEvent event, SubTransactionId subxact, SubTransactionId, void*) {
    if (event != SUBXACT_EVENT_ABORT_SUB) return;
    while (counted_used > 0 && counted[counted_used - 1].subxact >= subxact) {
        const CountedLocks& c = counted[--counted_used];
        c.company->taken -= c.taken;
        key_locks_taken -= c.taken;
    }
}

void count_key_locks(CompanyKeyLocks* company, int taken) {
    if (counted_used == counted_size) {
        const int size = counted_size == 0 ? 64 : counted_size * 2;
        const Size bytes = sizeof(CountedLocks) * static_cast<Size>(size);
        counted = static_cast<CountedLocks*>(counted == nullptr ? MemoryContextAlloc(TopTransactionContext, bytes)
                                                                : repalloc(counted, bytes));
        counted_size = size;
    }
    counted[counted_used++] = {GetCurrentSubTransactionId(), company, taken};
    company->taken += taken;
    key_locks_taken += taken;
}

CompanyKeyLocks* company_key_locks(const ChatRow* row) {
    if (key_locks_by_company == nullptr) {
        static bool callback_registered = false;
        if (!callback_registered) {
            RegisterXactCallback(forget_key_locks, nullptr);
            RegisterSubXactCallback(forget_rolled_back_key_locks, nullptr);
            callback_registered = true;
        }
        HASHCTL ctl;
        std::memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(pg_uuid_t);
        ctl.entrysize = sizeof(CompanyKeyLocks);
        ctl.hcxt = TopTransactionContext;
        key_locks_by_company = hash_create("crm_native key locks per company", 16, &ctl,
                                           HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
        key_locks_taken = 0;
    }
    bool found;
    CompanyKeyLocks* entry =
        static_cast<CompanyKeyLocks*>(hash_search(key_locks_by_company, &row->company, HASH_ENTER, &found));
    if (!found) entry->taken = 0;
    return entry;
}

// --- Lock tags ---------------------------------------------------------------
//
// The tags are in pg_locks, which every role may read. So they are keyed
// with a secret: a tenant cannot compute another company's tag for a
// guessed email and watch whether that company is creating that customer
// right now (found by an independent tester; the tags were plain hashes).
// A tag is the first 64 bits of SHA-256 over the secret, the CRM schema
// (its oid), the tag's kind (the key type, or the bulk lock), the company
// and the normalized key. The schema, because a customer is unique within
// its schema's customers table only: a role that attached the sync to a
// copy of the CRM tables of its own (temporary tables, where no row-level
// security applies) took the real tables' locks of any company it named,
// held them as long as it liked and read their tags (found by an
// independent tester); now its locks are its copy's.
// The secret is the database's 32 random bytes in crm_native.lock_secret
// (25_lock_secret.sql: made by CREATE EXTENSION, carried by WAL to standbys
// and backups). Only the extension's owner may SELECT it; the trigger
// reads it here below the permission checks, as whichever role fired it.
constexpr int kLockSecretLength = 32;
uint8 lock_secret[kLockSecretLength];
Oid lock_secret_relid = InvalidOid;  // the table it was read from

// False when the database's extension is older than 0.8.0 (no table yet):
// the tags are then 0.7.0's, unkeyed, so that while a new package rolls
// out, backends that still run the 0.7.0 library and those that load this
// one exclude each other until ALTER EXTENSION crm_native UPDATE.
bool load_lock_secret() {
    // A lookup by name every time: DROP and CREATE EXTENSION in a running
    // backend's database makes a new table, with a new secret.
    Oid schema = get_namespace_oid("crm_native", true);
    Oid relid = OidIsValid(schema) ? get_relname_relid("lock_secret", schema) : InvalidOid;
    if (!OidIsValid(relid)) return false;
    if (relid == lock_secret_relid) return true;
    // (Dropped since the lookup: by a DROP EXTENSION, which then drops the
    // chat table's triggers too, and so waits for this transaction.)
    Relation rel = try_table_open(relid, AccessShareLock);
    if (rel == nullptr) return false;
    if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("crm_native: table crm_native.lock_secret is not a heap table")));
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    TableScanDesc scan = table_beginscan(rel, snapshot, 0, nullptr);
    HeapTuple tuple = heap_getnext(scan, ForwardScanDirection);
    bool ok = false;
    if (tuple != nullptr && RelationGetDescr(rel)->natts >= 2) {
        bool isnull;
        Datum value = heap_getattr(tuple, 2, RelationGetDescr(rel), &isnull);
        if (!isnull && TupleDescAttr(RelationGetDescr(rel), 1)->atttypid == BYTEAOID) {
            bytea* secret = DatumGetByteaPP(value);
            if (VARSIZE_ANY_EXHDR(secret) == kLockSecretLength) {
                std::memcpy(lock_secret, VARDATA_ANY(secret), kLockSecretLength);
                ok = true;
            }
        }
    }
    table_endscan(scan);
    UnregisterSnapshot(snapshot);
    table_close(rel, AccessShareLock);
    if (!ok)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("crm_native: table crm_native.lock_secret does not hold a 32-byte secret"),
                        errhint("Recreate the extension while no chats are written: SELECT crm_native.uninstall(); "
                                "DROP EXTENSION crm_native; CREATE EXTENSION crm_native; SELECT "
                                "crm_native.install(); (not DROP ... CASCADE: it drops the records of the "
                                "application's triggers).")));
    lock_secret_relid = relid;
    return true;
}

constexpr uint8 kBulkTagKind = 0xFF;  // key tags: the key slot

uint64 keyed_tag_hash(uint8 kind, Oid schema, const pg_uuid_t* company, const char* key, size_t len) {
    if (!load_lock_secret()) {  // 0.7.0's tags (0.7.0 had one per database)
        if (kind == kBulkTagKind) return hash_bytes_extended(company->data, UUID_LEN, 0);
        uint64 seed = hash_bytes_extended(company->data, UUID_LEN, static_cast<uint64>(kind) + 1);
        return hash_bytes_extended(reinterpret_cast<const unsigned char*>(key), static_cast<int>(len), seed);
    }
    uint8 digest[PG_SHA256_DIGEST_LENGTH];
    pg_cryptohash_ctx* ctx = pg_cryptohash_create(PG_SHA256);
    if (ctx == nullptr || pg_cryptohash_init(ctx) < 0 || pg_cryptohash_update(ctx, lock_secret, kLockSecretLength) < 0 ||
        pg_cryptohash_update(ctx, reinterpret_cast<const uint8*>(&schema), sizeof schema) < 0 ||
        pg_cryptohash_update(ctx, &kind, 1) < 0 || pg_cryptohash_update(ctx, company->data, UUID_LEN) < 0 ||
        pg_cryptohash_update(ctx, reinterpret_cast<const uint8*>(key), len) < 0 ||
        pg_cryptohash_final(ctx, digest, sizeof digest) < 0) {
        const char* why = pg_cryptohash_error(ctx);
        pg_cryptohash_free(ctx);
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("crm_native: could not compute a lock tag: %s", why)));
    }
    pg_cryptohash_free(ctx);
    uint64 hash;
    std::memcpy(&hash, digest, sizeof hash);
    return hash;
}

// The key lock of (company, key type, normalized key).
void set_key_tag(LOCKTAG* tag, const ChatRow* row, int slot) {
    const text* key = DatumGetTextPP(row->key[slot]);
    uint64 hash = keyed_tag_hash(static_cast<uint8>(slot), store::crm_schema(row->rel), &row->company, VARDATA_ANY(key),
                                 VARSIZE_ANY_EXHDR(key));
    SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, static_cast<uint32>(hash >> 32), static_cast<uint32>(hash), kKeyLockClass);
}

void set_bulk_tag(LOCKTAG* tag, const ChatRow* row) {
    uint64 hash = keyed_tag_hash(kBulkTagKind, store::crm_schema(row->rel), &row->company, "", 0);
    SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, static_cast<uint32>(hash >> 32), static_cast<uint32>(hash), kBulkLockClass);
}

// Waits for a lock, naming the wait in the error that may end it
// (lock_timeout, a cancel, a deadlock): PostgreSQL's own says only
// "canceling statement due to lock timeout", or shows an advisory tag
// (found by an independent tester). No C++ object lives here: the wait may
// end in an error, whose handler restores error_context_stack.
const char* const kKeyHolder[kKeySlots] = {
    "creating a customer with this chat's email, or filling it into one (crm_native key lock)",
    "creating a customer with this chat's phone, or filling it into one (crm_native key lock)",
    "creating a customer with this chat's name (crm_native key lock)"};
const char* const kBulkHolder = "importing new customers of this chat's company (crm_native bulk lock)";

void lock_wait_context(void* holder) {
    errcontext("crm_native customer sync: waiting for a transaction that is %s", static_cast<const char*>(holder));
}

void wait_for(const LOCKTAG* tag, LOCKMODE mode, const char* holder) {
    ErrorContextCallback context;
    context.callback = lock_wait_context;
    context.arg = const_cast<char*>(holder);
    context.previous = error_context_stack;
    error_context_stack = &context;
    (void)crm::pg::trigger_stats::lock_acquire(tag, mode);  // trigger_stats counts the wait
    error_context_stack = context.previous;
}

// Waits for every current holder of the row's key locks to end.
void wait_for_key_holders(const ChatRow* row) {
    for (int k = 0; k < kKeySlots; k++) {
        if (!matches_by(row, k)) continue;
        LOCKTAG tag;
        set_key_tag(&tag, row, k);
        wait_for(&tag, ExclusiveLock, kKeyHolder[k]);  // waits for a current holder
        LockRelease(&tag, ExclusiveLock, false);  // keeps it if this transaction held it already
    }
}

// True when this transaction (still) holds the bulk lock of the row's company.
// A local lock table lookup: a subtransaction that took it and rolled back
// released it.
bool holds_bulk_lock(const ChatRow* row) {
    if (!bulk_lock_taken) return false;  // (spares most chats the tag's hash)
    LOCKTAG bulk;
    set_bulk_tag(&bulk, row);
    return LockHeldByMe(&bulk, ExclusiveLock);
}

// A key lock the row's sync waited for and kept (lock_keys_for_create),
// and how often it waited.
struct KeptLock {
    bool held;
    LOCKTAG tag;
    CompanyKeyLocks* company;  // whose count it is in
    int waits;
};

// Gives back the kept lock, before the sync waits for another one, and
// takes it out of the count: counted while no longer held, it would switch
// the transaction to the bulk lock early, and the company's other new
// customers would wait for that (an independent review).
void release_kept(KeptLock* kept) {
    if (!kept->held) return;
    LockRelease(&kept->tag, ExclusiveLock, false);
    kept->held = false;
    count_key_locks(kept->company, -1);
}

// One more wait of this chat's sync for another creator (kMaxLockWaits).
void count_lock_wait(KeptLock* kept) {
    if (++kept->waits <= kMaxLockWaits) return;
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("could not sync the chat to a customer: its keys kept passing between concurrent chats"),
                    errdetail("The chat waited %d times for other transactions creating a customer with its keys.",
                              kMaxLockWaits),
                    errhint("The transaction might succeed if retried.")));
}

// Waits for the holder of key lock `busy` to end and keeps the lock it hands
// over. Given back at once, a conditional request for it would fail while
// others queue for it, and they would pass it around forever: twenty chats
// of one new customer did, when its creator rolled back or when each chat
// filled the same new email into its own customer (found by independent
// testers).
void wait_and_keep(const LOCKTAG* busy, int slot, KeptLock* kept, CompanyKeyLocks* company) {
    count_lock_wait(kept);
    wait_for(busy, ExclusiveLock, kKeyHolder[slot]);  // waits for the holder
    kept->held = true;
    kept->tag = *busy;
    kept->company = company;
    count_key_locks(company, 1);
}

// Makes this transaction the only creator of the row's keys: true. Or, when
// another transaction held one of the locks, waits for it to end holding
// none of the row's other locks, keeps that one (wait_and_keep), and returns
// false: the caller looks the customer up again (the other one may have
// created it) and calls again with the same `kept`, which then takes the
// rest.
bool lock_keys_for_create(const ChatRow* row, KeptLock* kept) {
    CompanyKeyLocks* company = company_key_locks(row);
    LOCKTAG bulk;
    set_bulk_tag(&bulk, row);
    if (company->taken >= sync_key_lock_limit ||
        key_locks_taken >= static_cast<int64>(sync_key_lock_limit) * kMaxCompaniesFactor) {
        bulk_lock_taken = true;
        if (LockHeldByMe(&bulk, ExclusiveLock)) {
            // Held since an earlier row: waiting with it cannot be helped.
            wait_for_key_holders(row);
            return true;
        }
        // Taken for this row: as below, never wait while holding it. A
        // key holder of the company (that transaction's next new customer
        // checks the bulk lock) would deadlock with us; across companies
        // that aborted the other company's transaction (found by an
        // independent review). Nor wait for it while keeping a key lock: an
        // importer holding it may be waiting for that key (found by an
        // independent tester, by reading).
        if (LockAcquire(&bulk, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL) {
            release_kept(kept);
            wait_for(&bulk, ExclusiveLock, kBulkHolder);
        }
        LOCKTAG busy;
        int busy_slot = -1;
        for (int k = 0; k < kKeySlots && busy_slot < 0; k++) {
            if (!matches_by(row, k)) continue;
            set_key_tag(&busy, row, k);
            if (LockAcquire(&busy, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
                busy_slot = k;
            else
                LockRelease(&busy, ExclusiveLock, false);  // keeps it if held already
        }
        if (busy_slot < 0) return true;
        LockRelease(&bulk, ExclusiveLock, false);
        release_kept(kept);
        wait_and_keep(&busy, busy_slot, kept, company);
        return false;
    }
    // Never wait while holding one of the row's locks: take each key lock
    // and check the bulk lock only if free; when one is not, give back what
    // this row took and wait for that holder to end. So a chat that waits
    // holds none of the row's other locks and cannot deadlock with their
    // holders. It matters across tenants: row-level security refuses a chat
    // that names another company only after this BEFORE trigger, and such a
    // chat held that company's key lock while it waited for the next one,
    // aborting the other company's transaction (found by an independent
    // tester). (Locks an earlier row of the transaction took stay held, as
    // they must until it ends.)
    LOCKTAG taken[kKeySlots];
    int n_taken = 0;
    LOCKTAG busy;
    LOCKMODE busy_mode = NoLock;
    int busy_slot = -1;
    for (int k = 0; k < kKeySlots && busy_mode == NoLock; k++) {
        if (!matches_by(row, k)) continue;
        LOCKTAG tag;
        set_key_tag(&tag, row, k);
        if (LockHeldByMe(&tag, ExclusiveLock)) continue;  // kept, or an earlier row's
        if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL) {
            busy = tag;
            busy_mode = ExclusiveLock;
            busy_slot = k;
        } else {
            taken[n_taken++] = tag;
        }
    }
    if (busy_mode == NoLock && !LockHeldByMe(&bulk, ExclusiveLock)) {
        if (LockAcquire(&bulk, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL) {
            busy = bulk;  // a bulk importer of the company
            busy_mode = ShareLock;
        } else {
            LockRelease(&bulk, ShareLock, false);
        }
    }
    if (busy_mode == NoLock) {
        if (n_taken > 0) count_key_locks(company, n_taken);
        return true;
    }
    for (int i = 0; i < n_taken; i++) LockRelease(&taken[i], ExclusiveLock, false);
    release_kept(kept);
    if (busy_mode == ExclusiveLock) {
        wait_and_keep(&busy, busy_slot, kept, company);
    } else {
        // Share requests are granted together when the importer ends.
        count_lock_wait(kept);
        wait_for(&busy, ShareLock, kBulkHolder);  // waits for the importer
        LockRelease(&busy, ShareLock, false);
    }
    return false;
}

// Under REPEATABLE READ and SERIALIZABLE, after the key locks: the
// transaction snapshot cannot see a customer that another transaction
// committed while we waited for them. A serialization failure when the
// latest snapshot's match is not `expected` (nullptr: when there is one).
void fail_if_changed_meanwhile(const ChatRow* row, const pg_uuid_t* expected) {
    Match latest;
    lookup(row, &latest, GetLatestSnapshot());
    if (!latest.found) return;
    if (expected != nullptr && std::memcmp(latest.id.data, expected->data, UUID_LEN) == 0) return;
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("could not serialize access due to concurrent customer sync"),
                    errdetail("A concurrent transaction created or changed the customer with the same %s.",
                              row->has_key[kEmail] ? "email" : row->has_key[kPhone] ? "phone" : "name"),
                    errhint("The transaction might succeed if retried.")));
}

// Links an unlinked chat (steps 3-5): true and the customer, or false when
// the new customer was not written (create_customer).
bool sync_unlinked(const ChatRow* row, pg_uuid_t* out) {
    // A transaction that holds the bulk lock (a bulk import past
    // crm_native.sync_key_lock_limit new customers) waits for the row's key
    // holders BEFORE its lookup, and then needs only that one lookup: no
    // transaction can start creating a customer while the bulk lock is held
    // (key lockers check it after taking their key locks), and those that
    // started earlier hold their key locks until they end, so they have
    // ended, visibly to the lookup's fresh snapshot (READ COMMITTED; the
    // other levels check the latest snapshot below). This saves the second
    // lookup on the new-customer path of bulk imports.
    bool locked = false;
    KeptLock kept = {false, {}, nullptr, 0};
    if (holds_bulk_lock(row)) {
        wait_for_key_holders(row);
        locked = true;
    }
    for (int attempt = 0; attempt < kMaxAttempts; attempt++) {
        CHECK_FOR_INTERRUPTS();
        Match m;
        lookup(row, &m, InvalidSnapshot);
        if (m.found) {
            // A match the chat fills an email or phone into gains that key:
            // like creating a customer with it, which another transaction
            // may be doing right now (it finds no holder yet), so the same
            // key locks first, then look again: a customer created meanwhile
            // with the key may be the match now (email first).
            const bool fills = fills_email(row, &m) || fills_phone(row, &m);
            if (fills && !locked) {
                locked = lock_keys_for_create(row, &kept);  // false: waited for another creator
                attempt--;
                continue;
            }
            if (fills && IsolationUsesXactSnapshot()) fail_if_changed_meanwhile(row, &m.id);
            // 4. A match fills what the customer lacks (with updated_at), or
            // only locks it when the chat brings nothing new.
            if (m.touched || update_customer(row, &m, true)) {
                crm::pg::trigger_stats::customer_matched();  // trigger_stats
                *out = m.id;
                return true;
            }
            continue;  // deleted, merged or filled meanwhile: look again
        }
        if (!locked) {
            locked = lock_keys_for_create(row, &kept);  // false: waited for another creator
            attempt--;
            continue;  // look again: now no one else can create these keys, or one did
        }
        if (IsolationUsesXactSnapshot()) fail_if_changed_meanwhile(row, nullptr);
        if (!create_customer(row, out)) return false;
        crm::pg::trigger_stats::customer_created();  // trigger_stats
        return true;
    }
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("could not sync the chat to a customer: the matching customer kept changing concurrently"),
                    errhint("The transaction might succeed if retried.")));
}

// UPDATE of a chat row that is already linked: fill missing contact info on
// its customer (NEW.customer_id itself, if live). Never relinks.
void sync_linked(const ChatRow* row, Datum customer_id) {
    if (!row->has_key[kEmail] && !row->has_key[kPhone]) return;
    bool locked = false;
    KeptLock kept = {false, {}, nullptr, 0};
    for (int attempt = 0; attempt < kMaxAttempts; attempt++) {
        CHECK_FOR_INTERRUPTS();
        Datum values[2] = {customer_id, row->company_id};
        run_select(row, Statement::SyncChain, values, nullptr, InvalidSnapshot, 1);
        if (SPI_processed == 0 || !get_bool(0, 2)) return;  // gone, another company's, or deleted
        Match m;
        std::memset(&m, 0, sizeof m);
        std::memcpy(m.id.data, DatumGetUUIDP(customer_id)->data, UUID_LEN);
        m.email_missing = get_bool(0, 3);
        m.phone_missing = get_bool(0, 4);
        if (!fills_email(row, &m) && !fills_phone(row, &m)) return;
        // The key it gains: locked as by a customer's creator (sync_unlinked).
        if (!locked) {
            locked = lock_keys_for_create(row, &kept);  // false: waited for another creator
            attempt--;
            continue;
        }
        if (update_customer(row, &m, false)) return;
    }
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("could not sync the chat to its customer: the customer kept changing concurrently"),
                    errhint("The transaction might succeed if retried.")));
}

// Step 1: a chat that names its customer must name a live customer of its
// own company; otherwise the statement fails (a tenant must not count its
// chats in another tenant's customer). Under row-level security another
// company's customer is invisible, so it reads as "no such customer".
// Without `lock`, only the read (the early check of an UPDATE that also
// fills, which locks after its fill).
void check_linked_customer(Relation rel, Datum customer_id, Datum company_id, bool lock = true) {
    Datum values[1] = {customer_id};
    if (lock) store::run(rel, Statement::SyncLinkedCustomer, values, nullptr, 1);
    // Nothing to lock: missing, or (row-level security) visible but not
    // updatable by this role; then it is checked without the lock, as
    // update_customer does for a match.
    if (!lock || SPI_processed == 0) store::run(rel, Statement::SyncLinkedVisible, values, nullptr, 1);
    const char* problem = nullptr;
    if (SPI_processed == 0) {
        problem = "no such customer";
    } else {
        bool isnull;
        Datum company = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (isnull || std::memcmp(DatumGetUUIDP(company)->data, DatumGetUUIDP(company_id)->data, UUID_LEN) != 0)
            problem = "the customer belongs to another company";
        else if (!get_bool(0, 2))
            problem = "the customer is soft-deleted";
    }
    if (problem == nullptr) return;
    char* customer_text = DatumGetCString(DirectFunctionCall1(uuid_out, customer_id));
    char* company_text = DatumGetCString(DirectFunctionCall1(uuid_out, company_id));
    ereport(ERROR, (errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
                    errmsg("crm_native.customer_sync: chat names customer %s, which is not a live customer of its company %s",
                           customer_text, company_text),
                    errdetail("Key (customer_id)=(%s) is not a live customer of company_id=(%s): %s.", customer_text,
                              company_text, problem),
                    errhint("Leave customer_id NULL to have the chat linked by its contact data.")));
}

// check_linked_customer in its own SPI connection.
void checked_link(Relation rel, Datum customer_id, Datum company_id, bool lock = true) {
    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("crm_native.customer_sync: SPI_connect failed")));
    check_linked_customer(rel, customer_id, company_id, lock);
    SPI_finish();
}

// A column of the chat the trigger fired for (NEW). A stored generated
// column has no value yet in a BEFORE trigger (NEW of an UPDATE still holds
// the old one): it reads as NULL, as PL/pgSQL shows it to the trigger it
// replaces (found by an independent tester).
Datum new_column(HeapTuple tuple, AttrNumber attnum, TupleDesc desc, bool* isnull) {
    if (TupleDescAttr(desc, attnum - 1)->attgenerated != '\0') {
        *isnull = true;
        return (Datum)0;
    }
    return heap_getattr(tuple, attnum, desc, isnull);
}

// Whether the UPDATE's SET list names customer_email, customer_phone or
// customer_name.
bool sets_contact_column(const SyncTarget* t, const TriggerData* td) {
    for (int k = 0; k < kKeySlots; k++)
        if (t->att_contact[k] != InvalidAttrNumber &&
            bms_is_member(t->att_contact[k] - FirstLowInvalidHeapAttributeNumber, td->tg_updatedcols))
            return true;
    return false;
}

// An UPDATE that changes the chat's customer_id or company_id.
bool link_changed(const SyncTarget* t, HeapTuple old_row, HeapTuple new_row, TupleDesc desc) {
    const AttrNumber columns[2] = {t->att_customer_id, t->att_company_id};
    for (AttrNumber attnum : columns) {
        bool old_null, new_null;
        Datum old_value = heap_getattr(old_row, attnum, desc, &old_null);
        Datum new_value = new_column(new_row, attnum, desc, &new_null);
        if (old_null != new_null) return true;
        if (!old_null && std::memcmp(DatumGetUUIDP(old_value)->data, DatumGetUUIDP(new_value)->data, UUID_LEN) != 0)
            return true;
    }
    return false;
}

// Normalizes row->contact into row->key. An email or phone that cannot be
// normalized is present but matches nobody (no customer has its key, which
// cannot be written either): the row is matched by its other one, as the
// plpgsql function's lookup of a key nobody holds went on to the phone
// (found by an independent tester: an email over the key bound left a chat
// with a customer's phone unlinked). Present, it still keeps the name from
// being the match key. False when nothing is left to match by because a
// value failed: *failed is the first such slot and errbuf says why; true
// with *failed >= 0 when the row is matched by its other key despite it.
// One definition for the sync and for health()'s count of chats it would
// link (crm_native._sync_links_contact).
bool normalize_contact(ChatRow* row, int* failed, char* errbuf, std::size_t errcap) {
    *failed = -1;
    char reason[crm::core::kMessageCapacity];
    for (int k = 0; k < kKeySlots; k++) {
        row->has_key[k] = false;
        if (row->contact_null[k]) continue;
        text* raw = DatumGetTextPP(row->contact[k]);
        row->contact[k] = PointerGetDatum(raw);
        char* key = nullptr;
        reason[0] = '\0';
        const NormalizeResult result =
            crm::pg::normalize_key(kKeyTypes[k], VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw), &key, reason, sizeof reason);
        if (result == NormalizeResult::Failed) {
            // the name is a match key only without an email and a phone
            if (k == kName && (row->has_key[kEmail] || row->has_key[kPhone] || *failed >= 0)) continue;
            if (*failed < 0) {
                *failed = k;
                std::snprintf(errbuf, errcap, "%s", reason);
            }
            continue;
        }
        if (result != NormalizeResult::Normalized) continue;
        // a name behind an email or phone that failed is not a match key
        if (k == kName && *failed >= 0) continue;
        row->has_key[k] = true;
        row->key[k] = CStringGetTextDatum(key);
    }
    return *failed < 0 || row->has_key[kEmail] || row->has_key[kPhone];
}

// Reads and normalizes the row's contact columns. False (WARNING given) when
// a key the row is matched by cannot be normalized; a WARNING too for an
// email or phone that cannot be, when the row goes on by its other one.
// `linked`: the row already has its customer (an UPDATE: only a fill).
bool read_chat_row(const SyncTarget* t, HeapTuple tuple, TupleDesc desc, ChatRow* row, bool linked) {
    chat_serial++;
    char errbuf[crm::core::kMessageCapacity];
    for (int k = 0; k < kKeySlots; k++)
        row->contact[k] = new_column(tuple, t->att_contact[k], desc, &row->contact_null[k]);
    int failed = -1;
    if (!normalize_contact(row, &failed, errbuf, sizeof errbuf)) {
        ereport(WARNING, (errcode(ERRCODE_WARNING),
                          errmsg(linked ? "crm_native: customer sync filled nothing from this chat row: could not "
                                          "normalize its customer_%s: %s"
                                        : "crm_native: customer sync skipped for this chat row: could not normalize "
                                          "its customer_%s: %s",
                                 kKeyTypeName[failed], errbuf)));
        return false;
    }
    if (failed >= 0)
        ereport(WARNING, (errcode(ERRCODE_WARNING),
                          errmsg("crm_native: customer sync ignored this chat row's customer_%s (it matches nobody "
                                 "and is not filled in): could not normalize it: %s",
                                 kKeyTypeName[failed], errbuf)));
    row->session_id = new_column(tuple, t->att_session_id, desc, &row->session_id_null);
    return true;
}

}  // namespace

namespace crm::pg {

void define_customer_sync_gucs() {
    DefineCustomIntVariable(
        "crm_native.sync_key_lock_limit",
        "Key locks one transaction takes for new customers before it takes the single bulk lock.",
        "Bounds the shared lock table use of bulk imports. Past the limit, the transaction serializes "
        "new-customer creation of each company it imports into until it ends; other companies never wait. "
        "Superuser only: a lower value makes a role hold its companies' bulk locks sooner.",
        &sync_key_lock_limit, 256, 0, 1000000, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

}  // namespace crm::pg

extern "C" {
PG_FUNCTION_INFO_V1(crm_customer_sync);
Datum crm_customer_sync(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(crm_sync_links_contact);
Datum crm_sync_links_contact(PG_FUNCTION_ARGS);
}

namespace {

Datum customer_sync(FunctionCallInfo fcinfo) {
    TriggerData* td = store::trigger_call(fcinfo, "crm_native.customer_sync",
                                          store::kBefore | store::kForEachRow | store::kOnInsert | store::kOnUpdate);
    const bool is_insert = TRIGGER_FIRED_BY_INSERT(td->tg_event);
    const bool is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
    CHECK_FOR_INTERRUPTS();

    Relation rel = td->tg_relation;
    HeapTuple tuple = is_update ? td->tg_newtuple : td->tg_trigtuple;
    TupleDesc desc = RelationGetDescr(rel);
    SyncTarget* t = get_target(rel);

    bool customer_null;
    Datum customer_id = new_column(tuple, t->att_customer_id, desc, &customer_null);
    ChatRow row;
    row.rel = rel;
    bool company_null;
    row.company_id = new_column(tuple, t->att_company_id, desc, &company_null);
    // install() requires NOT NULL, which then rejects the row; a generated
    // company_id has no value yet (and no chat of it is ever synced)
    if (company_null) return PointerGetDatum(tuple);
    std::memcpy(row.company.data, DatumGetUUIDP(row.company_id)->data, UUID_LEN);

    // 1. A chat that arrives linked, or whose link or company an UPDATE
    // changes, must name a live customer of its company. An INSERT already
    // linked is then left as it is. The UPDATE trigger fires for every
    // UPDATE (a link an application's BEFORE trigger changed is checked
    // too); it syncs only when the statement sets a contact column, as the
    // application's trigger (BEFORE UPDATE OF the three) did.
    const bool check_link = !customer_null && (is_insert || link_changed(t, td->tg_trigtuple, tuple, desc));
    const bool syncs = is_insert ? customer_null : sets_contact_column(t, td);
    if (!syncs) {
        if (check_link) checked_link(rel, customer_id, row.company_id);
        return PointerGetDatum(tuple);
    }
    sync_columns(t, rel);
    // An UPDATE that changes the link and syncs is checked with the lock
    // only after its fill (below); a read now refuses a bad link before
    // anything else, as for every other chat.
    if (check_link) checked_link(rel, customer_id, row.company_id, false);

    // 2. Normalize; nothing to match by leaves the row unlinked.
    if (!crm::pg::trigger_stats::normalized(read_chat_row(t, tuple, desc, &row, !customer_null), customer_null)) {  // trigger_stats
        if (check_link) checked_link(rel, customer_id, row.company_id);
        return PointerGetDatum(tuple);
    }
    if (customer_null && !row.has_key[kEmail] && !row.has_key[kPhone] && !row.has_key[kName]) crm::pg::trigger_stats::chat_unlinked(crm::pg::trigger_stats::Unlinked::NoContact);  // trigger_stats
    if (!row.has_key[kEmail] && !row.has_key[kPhone] && !row.has_key[kName]) {
        if (check_link) checked_link(rel, customer_id, row.company_id);
        return PointerGetDatum(tuple);
    }

    MemoryContext caller_cxt = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("crm_native.customer_sync: SPI_connect failed")));

    pg_uuid_t linked_to;
    bool link = customer_null;
    if (link) {
        link = sync_unlinked(&row, &linked_to);  // 3.-5.
    } else {
        // An UPDATE of a linked row: fill only. The link check comes after
        // it: it locks the customer's row, and the fill may wait for a key
        // lock whose holder waits for that row to fill the same key into
        // the same customer (a deadlock found by an independent review).
        // The fill takes no lock of another company's or a deleted
        // customer, which the check then refuses.
        sync_linked(&row, customer_id);
        if (check_link) check_linked_customer(rel, customer_id, row.company_id);
    }
    SPI_finish();
    if (!link) return PointerGetDatum(tuple);

    // 6. Set NEW.customer_id.
    MemoryContextSwitchTo(caller_cxt);
    pg_uuid_t* id = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
    *id = linked_to;
    return PointerGetDatum(store::set_column(rel, tuple, t->att_customer_id, UUIDPGetDatum(id)));
}

}  // namespace

Datum crm_customer_sync(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded([&]() -> Datum { return customer_sync(fcinfo); }); });  // trigger_stats
}

// crm_native._sync_links_contact(email, phone, name): whether customer_sync
// would match or create a customer for a chat with this contact data (a key
// to match by, and no match key that fails to normalize).
Datum crm_sync_links_contact(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        ChatRow row;
        std::memset(&row, 0, sizeof row);
        for (int k = 0; k < kKeySlots; k++) {
            row.contact_null[k] = PG_ARGISNULL(k);
            if (!row.contact_null[k]) row.contact[k] = PG_GETARG_DATUM(k);
        }
        char errbuf[crm::core::kMessageCapacity];
        int failed = -1;
        if (!normalize_contact(&row, &failed, errbuf, sizeof errbuf)) PG_RETURN_BOOL(false);
        PG_RETURN_BOOL(row.has_key[kEmail] || row.has_key[kPhone] || row.has_key[kName]);
    });
}

bool crm::pg::sync::created_in_this_transaction(const pg_uuid_t* customer) {
    return last_created_lxid == MyProc->lxid && std::memcmp(last_created.data, customer->data, UUID_LEN) == 0;
}

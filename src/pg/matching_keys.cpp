// crm_native.matching_keys_sync(): AFTER INSERT OR UPDATE ON customers.
//
// Keeps the customer's rows in customer_matching_keys equal to its current
// customer_name, customer_email and customer_phone: one row per non-empty key
// (key_value = the raw column, normalized_value = crm::pg::normalize_key).
// An INSERT replaces whatever keys of the three types the customer's id
// already has (DELETE, then INSERT the new ones), as the plpgsql function
// does: a row can be inserted with keys already there, when an UPDATE moved
// it to another partition (PostgreSQL deletes and inserts it; the old
// company's keys stay) or when an application's AFTER INSERT trigger, firing
// first, updated it (its keys were written; this trigger sees the inserted
// version). An UPDATE touches only the key types whose raw value changed
// (DELETE that type's rows, INSERT the new one; each one statement whatever
// the number of keys): the same writes, hence the same privileges and RLS
// checks, as the plpgsql function it replaces. An UPDATE that changes none
// of the three columns (nor company_id) does no key work.
#include "pg/customer_triggers.hpp"
#include "pg/guard.hpp"
#include "pg/normalize.hpp"
#include "pg/trigger_stats.hpp"  // trigger_stats


#include <cstdio>

namespace {

using crm::pg::KeyType;
using crm::pg::NormalizeResult;
using namespace crm::pg::customers;
namespace store = crm::pg::store;

constexpr const char* kTrigger = "crm_native.matching_keys_sync";
constexpr int kKeyTypes = 3;

struct KeyColumn {
    KeyType type;
    const char* key_type;  // customer_matching_keys.key_type
    const char* column;    // customers column
};

// In the order the plpgsql function writes them (email, phone, name).
constexpr KeyColumn kKeys[kKeyTypes] = {
    {KeyType::Email, "email", "customer_email"},
    {KeyType::Phone, "phone", "customer_phone"},
    {KeyType::Name, "name", "customer_name"},
};

AttrNumber key_attnum(const CustomerRel* entry, int i) {
    switch (i) {
        case 0: return entry->att_email;
        case 1: return entry->att_phone;
        default: return entry->att_name;
    }
}

bool same_value(Datum a, bool a_null, Datum b, bool b_null, int16 typlen, bool typbyval) {
    if (a_null || b_null) return a_null && b_null;
    return datum_image_eq(a, b, typbyval, typlen);
}

// The normalized key of a raw value as a text datum, or false when the value
// gives no key: empty, or one the normalizer cannot use (e.g. a phone longer
// than the parser accepts: a key that could never match; DEBUG1 says why).
bool normalized_key(int i, Datum raw, Datum* out) {
    text* raw_text = DatumGetTextPP(raw);
    char* normalized = nullptr;
    char errbuf[256];
    errbuf[0] = '\0';
    NormalizeResult result = crm::pg::normalize_key(kKeys[i].type, VARDATA_ANY(raw_text), VARSIZE_ANY_EXHDR(raw_text),
                                                    &normalized, errbuf, sizeof errbuf);
    if (result == NormalizeResult::Failed) {
        elog(DEBUG1, "%s: no %s key for customer: %s", kTrigger, kKeys[i].key_type, errbuf);
        return false;
    }
    if (result != NormalizeResult::Normalized || normalized == nullptr) return false;
    *out = CStringGetTextDatum(normalized);
    return true;
}

Datum matching_keys_sync(FunctionCallInfo fcinfo) {
    TriggerData* data = store::trigger_call(fcinfo, kTrigger, store::kAfter | store::kForEachRow |
                                                                  store::kOnInsert | store::kOnUpdate);
    Relation rel = data->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    CustomerRel* entry = customer_rel(rel);
    for (int i = 0; i < kKeyTypes; i++) need_column(kTrigger, rel, key_attnum(entry, i), kKeys[i].column);

    bool is_update = TRIGGER_FIRED_BY_UPDATE(data->tg_event);
    HeapTuple new_row = is_update ? data->tg_newtuple : data->tg_trigtuple;
    HeapTuple old_row = is_update ? data->tg_trigtuple : nullptr;

    bool id_null, company_null;
    Datum customer_id = heap_getattr(new_row, entry->att_id, desc, &id_null);
    Datum company_id = heap_getattr(new_row, entry->att_company_id, desc, &company_null);
    if (id_null || company_null) return PointerGetDatum(nullptr);  // nothing a key could belong to

    Datum values[kKeyTypes];
    bool nulls[kKeyTypes];
    bool changed[kKeyTypes];
    bool any_change = false;
    bool company_changed = false;
    if (is_update) {
        bool old_company_null;
        Datum old_company = heap_getattr(old_row, entry->att_company_id, desc, &old_company_null);
        company_changed = !same_value(old_company, old_company_null, company_id, false, 16, false);
    }
    for (int i = 0; i < kKeyTypes; i++) {
        AttrNumber attnum = key_attnum(entry, i);
        values[i] = heap_getattr(new_row, attnum, desc, &nulls[i]);
        if (!is_update || company_changed) {
            changed[i] = true;  // a new row, or every key row carries the company: rewrite them all
        } else {
            bool old_null;
            Datum old_value = heap_getattr(old_row, attnum, desc, &old_null);
            changed[i] = !same_value(old_value, old_null, values[i], nulls[i], -1, false);
        }
        any_change = any_change || changed[i];
    }
    if (!any_change) return PointerGetDatum(nullptr);

    // Normalize before connecting to SPI: the key texts live in the trigger's
    // memory context either way.
    Datum changed_types[kKeyTypes], add_types[kKeyTypes], add_raw[kKeyTypes], add_normalized[kKeyTypes];
    int n_changed = 0, n_add = 0;
    for (int i = 0; i < kKeyTypes; i++) {
        if (!changed[i]) continue;
        changed_types[n_changed++] = CStringGetTextDatum(kKeys[i].key_type);
        if (!nulls[i] && normalized_key(i, values[i], &add_normalized[n_add])) {
            add_types[n_add] = changed_types[n_changed - 1];
            add_raw[n_add] = values[i];
            n_add++;
        }
    }
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "%s: SPI_connect failed", kTrigger);
    store::delete_matching_keys(rel, customer_id, changed_types, n_changed);
    if (n_add > 0) store::insert_matching_keys(rel, customer_id, company_id, add_types, add_raw, add_normalized, n_add);
    SPI_finish();
    return PointerGetDatum(nullptr);  // AFTER trigger: result ignored
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(crm_matching_keys_sync);
Datum crm_matching_keys_sync(PG_FUNCTION_ARGS) {
    return crm::pg::trigger_stats::measured(fcinfo, [](PG_FUNCTION_ARGS) { return crm::pg::run_guarded([&]() -> Datum { return matching_keys_sync(fcinfo); }); });  // trigger_stats
}
}

// Per-customer metric deltas: the arithmetic half of the native
// customer_metrics maintenance (src/pg/metrics.cpp does the SQL half).
//
// A statement on "VC Usage" changes, for one customer, a multiset R of
// conversations that left the customer (deleted, moved away, or the old
// version of an updated attribute) and a multiset A that arrived. Counts and
// sums move by |A| - |R|; first/last_interaction_at move by LEAST/GREATEST
// with A, unless a removed timestamp was the current extreme: then the trigger
// must re-probe the index for the new extreme. Distinct sessions are probed
// by the trigger (the net change comes in as sessions_delta).
#pragma once
#include "core/core_only.hpp"

#include <cstdint>

namespace crm::core {

// An optional timestamptz (microseconds since 2000-01-01, as PostgreSQL
// stores it); null when every created_at involved is NULL.
struct OptTimestamp {
    bool present = false;
    std::int64_t value = 0;

    static OptTimestamp of(std::int64_t v) noexcept { return OptTimestamp{true, v}; }
    static OptTimestamp none() noexcept { return OptTimestamp{}; }
    bool operator==(const OptTimestamp& o) const noexcept {
        return present == o.present && (!present || value == o.value);
    }
};

// A customer_metrics row (the columns that are maintained).
struct MetricsRow {
    std::int64_t conversations = 0;
    std::int64_t sessions = 0;
    std::int64_t views = 0;
    OptTimestamp first;
    OptTimestamp last;
};

// What one statement did to one customer's conversations.
struct CustomerDelta {
    std::int64_t conversations = 0;  // |A| - |R|
    std::int64_t views = 0;          // sum(view_count of A) - sum(view_count of R), NULL as 0
    OptTimestamp added_min, added_max;      // min/max created_at over A
    OptTimestamp removed_min, removed_max;  // min/max created_at over R
};

// True when a removed created_at may have been the row's first or last
// interaction, so LEAST/GREATEST cannot give the new value: the caller must
// probe min/max(created_at) of the customer's current conversations.
bool needs_extreme_probe(const MetricsRow& old_row, const CustomerDelta& delta) noexcept;

enum class MetricsAction {
    Update,     // write new_row
    Delete,     // the customer has no conversation left: delete the row
    Recompute,  // the stored row contradicts the delta (count below zero,
                // ...): recompute this customer from its conversations
};

struct MetricsOutcome {
    MetricsAction action = MetricsAction::Update;
    MetricsRow new_row;
};

// The new row from the locked old row, the statement's delta, the probed net
// change in distinct sessions, and (only when needs_extreme_probe) the probed
// min/max created_at of the customer's current conversations.
MetricsOutcome apply_delta(const MetricsRow& old_row, const CustomerDelta& delta,
                           std::int64_t sessions_delta, const OptTimestamp* probed_first,
                           const OptTimestamp* probed_last) noexcept;

}  // namespace crm::core

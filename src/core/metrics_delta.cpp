#include "core/metrics_delta.hpp"

namespace crm::core {
namespace {

OptTimestamp least(OptTimestamp a, OptTimestamp b) noexcept {  // SQL LEAST: ignores nulls
    if (!a.present) return b;
    if (!b.present) return a;
    return a.value <= b.value ? a : b;
}

OptTimestamp greatest(OptTimestamp a, OptTimestamp b) noexcept {
    if (!a.present) return b;
    if (!b.present) return a;
    return a.value >= b.value ? a : b;
}

bool add_overflows(std::int64_t a, std::int64_t b, std::int64_t* out) noexcept {
    return __builtin_add_overflow(a, b, out);
}

}  // namespace

bool needs_extreme_probe(const MetricsRow& old_row, const CustomerDelta& delta) noexcept {
    // A removed timestamp at (or, if the row is stale, beyond) the stored
    // extreme may have been the only one there.
    if (delta.removed_min.present &&
        (!old_row.first.present || delta.removed_min.value <= old_row.first.value))
        return true;
    if (delta.removed_max.present &&
        (!old_row.last.present || delta.removed_max.value >= old_row.last.value))
        return true;
    return false;
}

MetricsOutcome apply_delta(const MetricsRow& old_row, const CustomerDelta& delta,
                           std::int64_t sessions_delta, const OptTimestamp* probed_first,
                           const OptTimestamp* probed_last) noexcept {
    MetricsOutcome out;
    MetricsRow& row = out.new_row;
    if (add_overflows(old_row.conversations, delta.conversations, &row.conversations) ||
        add_overflows(old_row.sessions, sessions_delta, &row.sessions) ||
        add_overflows(old_row.views, delta.views, &row.views)) {
        out.action = MetricsAction::Recompute;
        return out;
    }
    if (row.conversations < 0 || row.sessions < 0 || row.sessions > row.conversations) {
        out.action = MetricsAction::Recompute;
        return out;
    }
    if (row.conversations == 0) {
        // Nothing left: the row goes. A non-zero session count or view sum
        // with no conversation means the stored row was wrong.
        out.action = (row.sessions == 0 && row.views == 0) ? MetricsAction::Delete
                                                           : MetricsAction::Recompute;
        return out;
    }
    if (needs_extreme_probe(old_row, delta)) {
        if (probed_first == nullptr || probed_last == nullptr) {
            out.action = MetricsAction::Recompute;
            return out;
        }
        // The probe saw the table after the statement: it is the answer.
        row.first = *probed_first;
        row.last = *probed_last;
    } else {
        row.first = least(old_row.first, delta.added_min);
        row.last = greatest(old_row.last, delta.added_max);
    }
    out.action = MetricsAction::Update;
    return out;
}

}  // namespace crm::core

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <ostream>

#include "core/metrics_delta.hpp"

// How Boost.Test prints the values of a failed check.
namespace crm::core {
std::ostream& operator<<(std::ostream& os, const OptTimestamp& t) {
    return t.present ? os << t.value : os << "NULL";
}
std::ostream& operator<<(std::ostream& os, MetricsAction a) {
    return os << (a == MetricsAction::Update ? "Update" : a == MetricsAction::Delete ? "Delete" : "Recompute");
}
}  // namespace crm::core

using namespace crm::core;

namespace {

MetricsRow row(std::int64_t n, std::int64_t s, std::int64_t v, OptTimestamp f, OptTimestamp l) {
    MetricsRow r;
    r.conversations = n;
    r.sessions = s;
    r.views = v;
    r.first = f;
    r.last = l;
    return r;
}

CustomerDelta inserted(std::int64_t n, std::int64_t v, OptTimestamp lo, OptTimestamp hi) {
    CustomerDelta d;
    d.conversations = n;
    d.views = v;
    d.added_min = lo;
    d.added_max = hi;
    return d;
}

const OptTimestamp T = OptTimestamp::of(1000), T2 = OptTimestamp::of(2000), T3 = OptTimestamp::of(3000);
const OptTimestamp NONE = OptTimestamp::none();

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics_delta)

BOOST_AUTO_TEST_CASE(insert_moves_counts_and_extremes_without_probe) {
    MetricsRow old = row(5, 2, 10, T2, T2);
    CustomerDelta d = inserted(2, 7, T, T3);
    BOOST_TEST(!needs_extreme_probe(old, d));
    MetricsOutcome o = apply_delta(old, d, 1, nullptr, nullptr);
    BOOST_TEST(o.action == MetricsAction::Update);
    BOOST_TEST(o.new_row.conversations == 7);
    BOOST_TEST(o.new_row.sessions == 3);
    BOOST_TEST(o.new_row.views == 17);
    BOOST_TEST(o.new_row.first == T);
    BOOST_TEST(o.new_row.last == T3);
}

BOOST_AUTO_TEST_CASE(null_created_at_is_ignored_like_sql_min_max) {
    MetricsRow old = row(1, 0, 0, NONE, NONE);  // the only chat has NULL created_at
    MetricsOutcome o = apply_delta(old, inserted(1, 0, T2, T2), 0, nullptr, nullptr);
    BOOST_TEST(o.new_row.first == T2);
    BOOST_TEST(o.new_row.last == T2);
    MetricsOutcome keep = apply_delta(row(1, 0, 0, T, T), inserted(1, 0, NONE, NONE), 0, nullptr, nullptr);
    BOOST_TEST(keep.new_row.first == T);
    BOOST_TEST(keep.new_row.last == T);
}

BOOST_AUTO_TEST_CASE(removing_an_interior_timestamp_needs_no_probe) {
    MetricsRow old = row(3, 1, 0, T, T3);
    CustomerDelta d;
    d.conversations = -1;
    d.removed_min = d.removed_max = T2;
    BOOST_TEST(!needs_extreme_probe(old, d));
    MetricsOutcome o = apply_delta(old, d, 0, nullptr, nullptr);
    BOOST_TEST(o.action == MetricsAction::Update);
    BOOST_TEST(o.new_row.conversations == 2);
    BOOST_TEST(o.new_row.first == T);
    BOOST_TEST(o.new_row.last == T3);
}

BOOST_AUTO_TEST_CASE(removing_an_extreme_takes_the_probed_value) {
    MetricsRow old = row(3, 1, 0, T, T3);
    CustomerDelta d;
    d.conversations = -1;
    d.removed_min = d.removed_max = T3;
    BOOST_TEST(needs_extreme_probe(old, d));
    OptTimestamp pf = T, pl = T2;
    MetricsOutcome o = apply_delta(old, d, 0, &pf, &pl);
    BOOST_TEST(o.action == MetricsAction::Update);
    BOOST_TEST(o.new_row.last == T2);
    BOOST_TEST(o.new_row.first == T);
    // without the probe it refuses to guess
    BOOST_TEST(apply_delta(old, d, 0, nullptr, nullptr).action == MetricsAction::Recompute);
}

BOOST_AUTO_TEST_CASE(removed_timestamp_on_a_row_with_null_extremes_probes) {
    CustomerDelta d;
    d.conversations = -1;
    d.removed_min = d.removed_max = T;
    BOOST_TEST(needs_extreme_probe(row(2, 0, 0, NONE, NONE), d));
}

BOOST_AUTO_TEST_CASE(last_conversation_gone_deletes_the_row) {
    CustomerDelta d;
    d.conversations = -2;
    d.views = -4;
    d.removed_min = T;
    d.removed_max = T2;
    OptTimestamp none = NONE;
    MetricsOutcome o = apply_delta(row(2, 1, 4, T, T2), d, -1, &none, &none);
    BOOST_TEST(o.action == MetricsAction::Delete);
}

BOOST_AUTO_TEST_CASE(impossible_results_ask_for_a_recompute) {
    CustomerDelta d;
    d.conversations = -3;
    BOOST_TEST(apply_delta(row(2, 1, 0, T, T), d, 0, nullptr, nullptr).action == MetricsAction::Recompute);
    CustomerDelta views_left;
    views_left.conversations = -1;
    views_left.views = -1;  // leaves views = 1 with no conversation
    BOOST_TEST(apply_delta(row(1, 0, 2, NONE, NONE), views_left, 0, nullptr, nullptr).action ==
               MetricsAction::Recompute);
    BOOST_TEST(apply_delta(row(1, 1, 0, NONE, NONE), CustomerDelta{}, 1, nullptr, nullptr).action ==
               MetricsAction::Recompute);  // 2 sessions for 1 conversation
    BOOST_TEST(apply_delta(row(1, 1, 0, NONE, NONE), CustomerDelta{}, -2, nullptr, nullptr).action ==
               MetricsAction::Recompute);
}

BOOST_AUTO_TEST_CASE(overflow_asks_for_a_recompute_instead_of_wrapping) {
    MetricsRow old = row(1, 1, std::numeric_limits<std::int64_t>::max(), T, T);
    CustomerDelta d = inserted(1, 1, T, T);
    BOOST_TEST(apply_delta(old, d, 0, nullptr, nullptr).action == MetricsAction::Recompute);
}

BOOST_AUTO_TEST_CASE(move_between_customers_is_minus_on_one_plus_on_other) {
    // conversation (views 3, at T2) moves from customer X to customer Y
    CustomerDelta out;
    out.conversations = -1;
    out.views = -3;
    out.removed_min = out.removed_max = T2;
    OptTimestamp pf = T, pl = T;
    MetricsOutcome x = apply_delta(row(2, 2, 5, T, T2), out, -1, &pf, &pl);
    BOOST_TEST(x.action == MetricsAction::Update);
    BOOST_TEST(x.new_row.conversations == 1);
    BOOST_TEST(x.new_row.sessions == 1);
    BOOST_TEST(x.new_row.views == 2);
    BOOST_TEST(x.new_row.last == T);
    MetricsOutcome y = apply_delta(row(1, 1, 0, T3, T3), inserted(1, 3, T2, T2), 1, nullptr, nullptr);
    BOOST_TEST(y.new_row.conversations == 2);
    BOOST_TEST(y.new_row.views == 3);
    BOOST_TEST(y.new_row.first == T2);
    BOOST_TEST(y.new_row.last == T3);
}

BOOST_AUTO_TEST_CASE(update_of_views_only_needs_no_probe) {
    CustomerDelta d;
    d.views = 5;
    MetricsOutcome o = apply_delta(row(4, 2, 1, T, T3), d, 0, nullptr, nullptr);
    BOOST_TEST(o.action == MetricsAction::Update);
    BOOST_TEST(o.new_row.views == 6);
    BOOST_TEST(o.new_row.conversations == 4);
}

BOOST_AUTO_TEST_SUITE_END()

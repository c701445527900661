#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "core/latency_histogram.hpp"

using namespace crm::core;

BOOST_AUTO_TEST_SUITE(latency_histogram)

BOOST_AUTO_TEST_CASE(bucket_bounds) {
    BOOST_TEST(latency_bucket(0) == 0u);
    BOOST_TEST(latency_bucket(127) == 0u);
    BOOST_TEST(latency_bucket(128) == 1u);
    BOOST_TEST(latency_bucket(kLatencyMaxNs - 1) == kLatencyBuckets - 2);
    BOOST_TEST(latency_bucket(kLatencyMaxNs) == kLatencyBuckets - 1);
    BOOST_TEST(latency_bucket(std::numeric_limits<std::uint64_t>::max()) == kLatencyBuckets - 1);
    BOOST_TEST(latency_bucket_upper(0) == kLatencyMinNs);
    BOOST_TEST(latency_bucket_upper(kLatencyBuckets - 1) == std::numeric_limits<std::uint64_t>::max());
    BOOST_TEST(latency_bucket_upper(kLatencyBuckets - 2) == kLatencyMaxNs);
}

// Every value lies in [lower, upper) of its bucket, buckets are monotonic,
// and a bucket is at most 1/8 of its lower bound wide.
BOOST_AUTO_TEST_CASE(every_value_in_its_bucket) {
    std::size_t last = 0;
    for (std::uint64_t v = 1; v < (std::uint64_t{1} << 40); v += 1 + v / 997) {
        const std::size_t b = latency_bucket(v);
        BOOST_REQUIRE(b < kLatencyBuckets);
        BOOST_REQUIRE(b >= last);
        last = b;
        BOOST_REQUIRE(v < latency_bucket_upper(b));
        if (b > 0) {
            const std::uint64_t lower = latency_bucket_upper(b - 1);
            BOOST_REQUIRE(v >= lower);
            if (b < kLatencyBuckets - 1) BOOST_REQUIRE((latency_bucket_upper(b) - lower) * 8 <= lower);
        }
    }
}

BOOST_AUTO_TEST_CASE(empty_is_zero) {
    std::vector<std::uint64_t> counts(kLatencyBuckets, 0);
    BOOST_TEST(latency_percentile(counts.data(), counts.size(), 0.5, 0, 0) == 0.0);
}

// 1..1000 microseconds, one each: p50, p95, p99 within 12.5% above the exact
// value, never below it; p100 is the maximum.
BOOST_AUTO_TEST_CASE(uniform_percentiles) {
    std::vector<std::uint64_t> counts(kLatencyBuckets, 0);
    for (std::uint64_t us = 1; us <= 1000; us++) counts[latency_bucket(us * 1000)]++;
    const std::uint64_t lo = 1000, hi = 1000 * 1000;
    for (double q : {0.5, 0.95, 0.99}) {
        const double exact = q * 1000 * 1000;  // the value of rank q * 1000
        const double got = latency_percentile(counts.data(), counts.size(), q, lo, hi);
        BOOST_TEST(got >= exact);
        BOOST_TEST(got <= exact * 1.125);
    }
    BOOST_TEST(latency_percentile(counts.data(), counts.size(), 1.0, lo, hi) == static_cast<double>(hi));
}

// A single value: every percentile is that value (clamped to min = max).
BOOST_AUTO_TEST_CASE(single_value_is_exact) {
    std::vector<std::uint64_t> counts(kLatencyBuckets, 0);
    counts[latency_bucket(123456)]++;
    for (double q : {0.01, 0.5, 0.99, 1.0})
        BOOST_TEST(latency_percentile(counts.data(), counts.size(), q, 123456, 123456) == 123456.0);
}

// 99 fast calls and one slow one: p50 and p95 are fast, p99 still fast
// (rank 99), p100 the slow one.
BOOST_AUTO_TEST_CASE(outlier) {
    std::vector<std::uint64_t> counts(kLatencyBuckets, 0);
    for (int i = 0; i < 99; i++) counts[latency_bucket(50000)]++;
    counts[latency_bucket(9000000)]++;
    BOOST_TEST(latency_percentile(counts.data(), counts.size(), 0.95, 50000, 9000000) <= 50000 * 1.125);
    BOOST_TEST(latency_percentile(counts.data(), counts.size(), 0.99, 50000, 9000000) <= 50000 * 1.125);
    BOOST_TEST(latency_percentile(counts.data(), counts.size(), 1.0, 50000, 9000000) == 9000000.0);
}

BOOST_AUTO_TEST_SUITE_END()

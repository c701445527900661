// A fixed log-linear latency histogram: the percentile half of the trigger
// statistics (src/pg/trigger_stats.cpp keeps the counts in shared memory).
//
// Durations are in nanoseconds. Bucket 0 holds everything below kMinNs;
// above it, each power of two [2^k, 2^(k+1)) is split into kSubBuckets
// equal-width buckets, up to kMaxNs (about 68.7 s); the last bucket holds
// everything from kMaxNs on. A bucket's width is at most 1/kSubBuckets of its
// lower bound, so a percentile read as the bucket's upper bound is at most
// 12.5% above the true value (and never above the maximum actually seen,
// which the caller passes in). Pure arithmetic: no allocation, no exception.
#pragma once
#include "core/core_only.hpp"

#include <cstddef>
#include <cstdint>

namespace crm::core {

constexpr int kLatencyMinShift = 7;   // 128 ns
constexpr int kLatencyMaxShift = 36;  // 2^36 ns = 68.7 s
constexpr int kLatencySubBuckets = 8;
constexpr std::uint64_t kLatencyMinNs = std::uint64_t{1} << kLatencyMinShift;
constexpr std::uint64_t kLatencyMaxNs = std::uint64_t{1} << kLatencyMaxShift;
// underflow + (octaves x sub-buckets) + overflow
constexpr std::size_t kLatencyBuckets =
    1 + static_cast<std::size_t>(kLatencyMaxShift - kLatencyMinShift) * kLatencySubBuckets + 1;

// The bucket of a duration.
std::size_t latency_bucket(std::uint64_t ns) noexcept;

// The smallest duration that is not in bucket b (its exclusive upper bound);
// for the last bucket, UINT64_MAX.
std::uint64_t latency_bucket_upper(std::size_t b) noexcept;

// The q-quantile (0 < q <= 1) of the durations counted in counts[0..n), as
// the upper bound of the bucket that holds the value of rank ceil(q * total),
// clamped to [min_ns, max_ns] (the exact extremes seen). 0 when empty.
double latency_percentile(const std::uint64_t* counts, std::size_t n, double q, std::uint64_t min_ns,
                          std::uint64_t max_ns) noexcept;

}  // namespace crm::core

// See latency_histogram.hpp.
#include "core/latency_histogram.hpp"

#include <cmath>
#include <limits>

namespace crm::core {

namespace {
int floor_log2(std::uint64_t v) noexcept { return 63 - __builtin_clzll(v); }
}  // namespace

std::size_t latency_bucket(std::uint64_t ns) noexcept {
    if (ns < kLatencyMinNs) return 0;
    if (ns >= kLatencyMaxNs) return kLatencyBuckets - 1;
    const int k = floor_log2(ns);  // kLatencyMinShift <= k < kLatencyMaxShift
    // the kLatencySubBuckets equal parts of [2^k, 2^(k+1))
    const std::uint64_t sub = (ns - (std::uint64_t{1} << k)) >> (k - 3);
    return 1 + static_cast<std::size_t>(k - kLatencyMinShift) * kLatencySubBuckets + static_cast<std::size_t>(sub);
}

std::uint64_t latency_bucket_upper(std::size_t b) noexcept {
    if (b == 0) return kLatencyMinNs;
    if (b >= kLatencyBuckets - 1) return std::numeric_limits<std::uint64_t>::max();
    const std::size_t i = b - 1;
    const int k = kLatencyMinShift + static_cast<int>(i / kLatencySubBuckets);
    const std::uint64_t sub = i % kLatencySubBuckets;
    return (std::uint64_t{1} << k) + ((sub + 1) << (k - 3));
}

double latency_percentile(const std::uint64_t* counts, std::size_t n, double q, std::uint64_t min_ns,
                          std::uint64_t max_ns) noexcept {
    std::uint64_t total = 0;
    for (std::size_t b = 0; b < n; b++) total += counts[b];
    if (total == 0) return 0.0;
    if (!(q > 0.0)) q = std::numeric_limits<double>::min();
    if (q > 1.0) q = 1.0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
    if (rank < 1) rank = 1;
    if (rank > total) rank = total;
    std::uint64_t seen = 0;
    std::uint64_t value = max_ns;
    for (std::size_t b = 0; b < n; b++) {
        seen += counts[b];
        if (seen >= rank) {
            value = latency_bucket_upper(b);
            break;
        }
    }
    if (value > max_ns) value = max_ns;
    if (value < min_ns) value = min_ns;
    return static_cast<double>(value);
}

}  // namespace crm::core

// libFuzzer target: crm::core::normalize_phone. The first byte picks a region
// (some of them unknown, which must throw std::invalid_argument); the rest is
// the number.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "fuzz_check.hpp"
#include "core/normalize.hpp"

namespace {
const char* const kRegions[] = {"US", "GB", "DE", "FR", "IT", "BR", "IN", "JP", "AE", "us", "XX", "", "USA", "001"};
constexpr std::size_t kKnownRegions = 10;  // the first ten are supported
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::size_t pick = data[0] % (sizeof kRegions / sizeof kRegions[0]);
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        const auto key = crm::core::normalize_phone(input, kRegions[pick]);
        crm::fuzz::require(pick < kKnownRegions, "an unknown region throws", input);
        crm::fuzz::check_key(key, input);
        if (key) {
            crm::fuzz::require(input.size() <= crm::core::kMaxPhoneInputBytes, "input over the bound has no key",
                               input);
            crm::fuzz::require(key->find_first_not_of("0123456789") == std::string::npos,
                               "a phone key is ASCII digits", input);
        }
    } catch (const std::invalid_argument&) {
        crm::fuzz::require(pick >= kKnownRegions, "a known region never throws", input);
    }
    return 0;
}

// libFuzzer target: crm::core::normalize_email. The first byte picks the
// provider-rules option; the rest is the address.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "core/normalize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const crm::core::EmailOptions options{(data[0] & 1) != 0};
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto key = crm::core::normalize_email(input, options);
    crm::fuzz::check_key(key, input);
    if (key) {
        // Normalizing a key again gives the same key.
        const auto again = crm::core::normalize_email(*key, options);
        crm::fuzz::require(again && *again == *key, "normalize_email is idempotent", input);
        crm::fuzz::require(key->front() != ' ' && key->back() != ' ', "email key is trimmed", input);
    }
    return 0;
}

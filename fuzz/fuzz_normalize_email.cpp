// libFuzzer target: crm::core::normalize_email. The first byte picks the
// provider-rules option; the rest is the address.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "core/normalize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const crm::core::EmailOptions options{(data[0] & 1) != 0};
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    // The only refusal is a length bound (normalize.hpp): input over
    // kMaxKeyInputBytes or a key over kMaxKeyBytes (case folding expands a
    // character at most ~11 times: U+FDFA is 3 bytes, its folding 33).
    std::optional<std::string> key;
    try {
        key = crm::core::normalize_email(input, options);
    } catch (const std::invalid_argument&) {
        crm::fuzz::require(input.size() > crm::core::kMaxKeyBytes / 32, "only long input is refused", input);
        return 0;
    }
    crm::fuzz::check_key(key, input);
    if (key) {
        // Normalizing a key again gives the same key.
        const auto again = crm::core::normalize_email(*key, options);
        crm::fuzz::require(again && *again == *key, "normalize_email is idempotent", input);
        crm::fuzz::require(key->front() != ' ' && key->back() != ' ', "email key is trimmed", input);
    }
    return 0;
}

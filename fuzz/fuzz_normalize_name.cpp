// libFuzzer target: crm::core::normalize_name.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "core/normalize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // The only refusal is a length bound (normalize.hpp): input over
    // kMaxKeyInputBytes or a key over kMaxKeyBytes (case folding expands a
    // character at most ~11 times: U+FDFA is 3 bytes, its folding 33).
    std::optional<std::string> key;
    try {
        key = crm::core::normalize_name(input);
    } catch (const std::invalid_argument&) {
        crm::fuzz::require(input.size() > crm::core::kMaxKeyBytes / 32, "only long input is refused", input);
        return 0;
    }
    crm::fuzz::check_key(key, input);
    if (key) {
        crm::fuzz::require(key->front() != ' ' && key->back() != ' ', "name key is trimmed", input);
        crm::fuzz::require(key->find("  ") == std::string::npos, "inner whitespace is collapsed", input);
        // Normalizing a key again gives the same key.
        const auto again = crm::core::normalize_name(*key);
        crm::fuzz::require(again && *again == *key, "normalize_name is idempotent", input);
    }
    return 0;
}

// libFuzzer target: crm::core::normalize_name.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "core/normalize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto key = crm::core::normalize_name(input);
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

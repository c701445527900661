// UTF-8 helpers shared by the normalizers (internal to src/core).
#pragma once
#include "core/core_only.hpp"

#include <string>
#include <string_view>

namespace crm::core::text {

// raw without leading and trailing Unicode White_Space (space, tab, CR/LF,
// NBSP, U+2000..U+200A, U+3000 ideographic space, ...). Bytes that are not
// valid UTF-8 are not whitespace and are kept.
std::string_view trim_space(std::string_view raw);

bool is_valid_utf8(std::string_view s);
bool is_ascii(std::string_view s) noexcept;

// ASCII letters lower-cased, every other byte unchanged.
std::string ascii_lower(std::string_view s);

// Throws std::length_error for input ICU's 32-bit indices cannot address
// (PostgreSQL text is at most 1 GB, so this only guards direct callers).
void require_icu_length(std::string_view s);

// std::invalid_argument naming `what` unless s has at most kMaxKeyInputBytes
// (input) or kMaxKeyBytes (a normalized key); see normalize.hpp.
void require_key_input_length(std::string_view s, const char* what);
void require_key_length(std::string_view key, const char* what);

}  // namespace crm::core::text

namespace crm::core::detail {
// One-time library start-up of each normalizer (see warm_up_normalizers).
void warm_up_name_normalizer();
void warm_up_phone_util();
}  // namespace crm::core::detail

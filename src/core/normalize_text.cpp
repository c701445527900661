#include "core/normalize_text.hpp"

#include "core/normalize.hpp"

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace crm::core::text {

void require_icu_length(std::string_view s) {
    if (s.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max()))
        throw std::length_error("crm_native: text too long to normalize");
}

void require_key_input_length(std::string_view s, const char* what) {
    if (s.size() > kMaxKeyInputBytes)
        throw std::invalid_argument(std::string("crm_native: ") + what + " of " + std::to_string(s.size()) +
                                    " bytes is too long to be a matching key (at most " +
                                    std::to_string(kMaxKeyInputBytes) + " bytes)");
}

void require_key_length(std::string_view key, const char* what) {
    if (key.size() > kMaxKeyBytes)
        throw std::invalid_argument(std::string("crm_native: the ") + what + " key would be " +
                                    std::to_string(key.size()) + " bytes long, more than a matching key may be (" +
                                    std::to_string(kMaxKeyBytes) + " bytes)");
}

std::string_view trim_space(std::string_view raw) {
    require_icu_length(raw);
    const auto* bytes = reinterpret_cast<const uint8_t*>(raw.data());
    const auto length = static_cast<int32_t>(raw.size());
    int32_t begin = 0;
    while (begin < length) {
        int32_t next = begin;
        UChar32 c;
        U8_NEXT(bytes, next, length, c);
        if (c < 0 || !u_isUWhiteSpace(c)) break;
        begin = next;
    }
    int32_t end = length;
    while (end > begin) {
        int32_t prev = end;
        UChar32 c;
        U8_PREV(bytes, begin, prev, c);
        if (c < 0 || !u_isUWhiteSpace(c)) break;
        end = prev;
    }
    return raw.substr(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
}

bool is_valid_utf8(std::string_view s) {
    require_icu_length(s);
    const auto* bytes = reinterpret_cast<const uint8_t*>(s.data());
    const auto length = static_cast<int32_t>(s.size());
    int32_t i = 0;
    while (i < length) {
        UChar32 c;
        U8_NEXT(bytes, i, length, c);
        if (c < 0) return false;
    }
    return true;
}

bool is_ascii(std::string_view s) noexcept {
    for (char ch : s)
        if (static_cast<unsigned char>(ch) >= 0x80) return false;
    return true;
}

std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& ch : out)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return out;
}

}  // namespace crm::core::text

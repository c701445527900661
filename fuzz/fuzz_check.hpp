// Properties every normalizer's key must have, checked by the fuzz targets.
// A violated property aborts, which libFuzzer reports as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace crm::fuzz {

inline void require(bool ok, const char* property, std::string_view input) {
    if (ok) return;
    std::fprintf(stderr, "property violated: %s (input of %zu bytes)\n", property, input.size());
    std::abort();
}

// Strict UTF-8 check (no overlongs, surrogates or code points past U+10FFFF).
inline bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        std::size_t len;
        unsigned cp;
        if (b < 0x80) { ++i; continue; }
        if (b >= 0xC2 && b <= 0xDF) { len = 2; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) { len = 3; cp = b & 0x0F; }
        else if (b >= 0xF0 && b <= 0xF4) { len = 4; cp = b & 0x07; }
        else return false;
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

// A key is never empty (no key is std::nullopt), is valid UTF-8 and has no
// NUL byte unless the input had one.
inline void check_key(const std::optional<std::string>& key, std::string_view input) {
    if (!key) return;
    require(!key->empty(), "a key is never empty", input);
    require(valid_utf8(*key), "a key is valid UTF-8", input);
    require(key->find('\0') == std::string::npos || input.find('\0') != std::string_view::npos,
            "no NUL byte appears from nowhere", input);
}

}  // namespace crm::fuzz

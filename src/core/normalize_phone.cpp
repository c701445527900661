// Phone keys: E.164 digits without the '+', read by libphonenumber with a
// default region for national numbers. "+1-555-123-4567", "(555) 123-4567"
// and "1 555 123 4567" (region US) all give "15551234567".
//
// This file includes libphonenumber, whose headers clash with PostgreSQL's
// (both define macros and names such as "int64"): it must stay in src/core.
#include "core/normalize.hpp"
#include "core/normalize_text.hpp"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace crm::core {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

const std::set<std::string>& supported_regions() {
    static const std::set<std::string> regions = [] {
        std::set<std::string> all;
        PhoneNumberUtil::GetInstance()->GetSupportedRegions(&all);
        return all;
    }();
    return regions;
}

// "us", " US " -> "US". Longer text is kept (and then rejected) as given.
std::string canonical_region(std::string_view region) {
    std::string out;
    out.reserve(region.size());
    for (char ch : region) {
        if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
        out.push_back(ch);
    }
    return out;
}

[[noreturn]] void throw_unknown_region(std::string_view region) {
    // The region comes from a user: quote at most 32 bytes of it (the message
    // stays short; message.hpp truncates at a UTF-8 boundary anyway).
    std::string shown(region.substr(0, 32));
    if (region.size() > 32) shown += "...";
    throw std::invalid_argument("crm_native: unknown phone region \"" + shown +
                                "\" (expected an ISO 3166-1 two-letter region code that "
                                "libphonenumber supports, such as \"US\", \"GB\" or \"DE\")");
}

std::string ascii_digits(std::string_view s) {
    std::string out;
    for (char ch : s)
        if (ch >= '0' && ch <= '9') out.push_back(ch);
    return out;
}

std::optional<std::string> non_empty(std::string s) {
    if (s.empty()) return std::nullopt;
    return s;
}

// libphonenumber spends ~45 us per number in ICU regular expressions. Chat
// rows repeat the same customer's phone many times, so each thread keeps the
// keys it computed: the key depends only on (region, input) and the library,
// so a remembered key is exactly the one a new parse would give. Bounded:
// when full it starts over (simple, and a full cache means a bulk load of
// distinct numbers, where remembering does not pay anyway).
class PhoneKeyCache {
public:
    static constexpr std::size_t kCapacity = 4096;

    const std::optional<std::string>* find(const std::string& lookup) const {
        const auto it = keys_.find(lookup);
        return it == keys_.end() ? nullptr : &it->second;
    }
    void remember(std::string lookup, const std::optional<std::string>& key) {
        if (keys_.size() >= kCapacity) keys_.clear();
        keys_.emplace(std::move(lookup), key);
    }

private:
    std::unordered_map<std::string, std::optional<std::string>> keys_;
};

thread_local PhoneKeyCache phone_key_cache;

std::optional<std::string> parse_phone(const std::string& input, const std::string& region_code) {
    const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
    PhoneNumber number;
    if (util.Parse(input, region_code, &number) == PhoneNumberUtil::NO_PARSING_ERROR &&
        util.IsPossibleNumberWithReason(number) == PhoneNumberUtil::IS_POSSIBLE) {
        // The key is the line, not the extension: "555-123-4567 x89" matches
        // "555-123-4567".
        number.clear_extension();
        std::string e164;
        util.Format(number, PhoneNumberUtil::E164, &e164);
        if (!e164.empty() && e164[0] == '+') e164.erase(0, 1);
        if (!e164.empty()) return e164;
    }
    // Not a number libphonenumber can read as a complete one (too short or
    // too long for its country, unknown country code, local-only number
    // without area code, no digits): fall back to the digits, as the plpgsql
    // did, but with fullwidth and other Unicode decimal digits converted.
    std::string digits = input;
    util.NormalizeDigitsOnly(&digits);
    return non_empty(ascii_digits(digits));
}

}  // namespace

namespace detail {

// libphonenumber spends 30-45 us in ICU regular expressions per number, most
// of a new customer's CPU outside the SQL statements. Most numbers in a US
// CRM are written plainly: "+1 555 123 4567", "(555) 123-4567",
// "555.123.4567", "15551234567". For those, in region US, the key is known
// without parsing: the North American Numbering Plan's country code 1 and
// ten national digits whose area code starts with 2-9. Accepted (else the
// caller parses):
//   - only ASCII digits and the separators space - . ( ), and one leading "+"
//     followed directly by "1";
//   - with "+": exactly 11 digits, "1" then [2-9];
//   - without: 10 digits starting [2-9], or 11 digits "1" then [2-9] (the
//     national prefix 1, which libphonenumber strips).
// The key is then "1" and the ten national digits, what libphonenumber's
// Parse + IsPossibleNumber (length 10 is possible for country code 1) +
// E164 format give. test/unit/normalize_test.cpp checks the two paths agree
// on every accepted input of a large randomized set and on the edge cases.
std::optional<std::string> nanp_phone_key(std::string_view trimmed, std::string_view region_code) {
    if (region_code != "US" || trimmed.empty() || trimmed.size() > 32) return std::nullopt;
    bool plus = trimmed[0] == '+';
    if (plus && (trimmed.size() < 2 || trimmed[1] != '1')) return std::nullopt;
    char digits[12];
    std::size_t n = 0;
    for (std::size_t i = plus ? 1 : 0; i < trimmed.size(); i++) {
        char ch = trimmed[i];
        if (ch >= '0' && ch <= '9') {
            if (n == sizeof digits) return std::nullopt;
            digits[n++] = ch;
        } else if (ch != ' ' && ch != '-' && ch != '.' && ch != '(' && ch != ')') {
            return std::nullopt;
        }
    }
    std::string key;
    if (n == 11 && digits[0] == '1' && digits[1] >= '2') {
        key.assign(digits, n);
    } else if (!plus && n == 10 && digits[0] >= '2') {
        key.reserve(11);
        key.push_back('1');
        key.append(digits, n);
    } else {
        return std::nullopt;
    }
    return key;
}

std::optional<std::string> parsed_phone_key(std::string_view trimmed, std::string_view region_code) {
    return parse_phone(std::string(trimmed), std::string(region_code));
}

}  // namespace detail

bool is_supported_region(std::string_view region) noexcept {
    try {
        return supported_regions().count(canonical_region(region)) != 0;
    } catch (...) {
        return false;
    }
}

std::optional<std::string> normalize_phone(std::string_view raw, std::string_view region) {
    const std::string region_code = canonical_region(region);
    if (supported_regions().count(region_code) == 0) throw_unknown_region(region);

    // The bound comes before any parsing (see kMaxPhoneInputBytes).
    if (raw.size() > kMaxPhoneInputBytes) return std::nullopt;
    const std::string_view trimmed = text::trim_space(raw);
    if (trimmed.empty()) return std::nullopt;
    // libphonenumber expects UTF-8; for anything else keep the plain digits.
    if (!text::is_valid_utf8(trimmed)) return non_empty(ascii_digits(trimmed));

    if (auto key = detail::nanp_phone_key(trimmed, region_code)) return key;
    std::string lookup = region_code;
    lookup.push_back('\0');
    lookup.append(trimmed);
    if (const auto* known = phone_key_cache.find(lookup)) return *known;
    std::optional<std::string> key = parse_phone(std::string(trimmed), region_code);
    phone_key_cache.remember(std::move(lookup), key);
    return key;
}

namespace detail {
void warm_up_phone_util() { (void)supported_regions(); }
}  // namespace detail

void warm_up_normalizers() {
    detail::warm_up_phone_util();
    detail::warm_up_name_normalizer();
}

void phonenumber_library_file(char* buf, std::size_t cap) noexcept {
    if (buf == nullptr || cap == 0) return;
    buf[0] = '\0';
    Dl_info info;
    std::memset(&info, 0, sizeof info);
    PhoneNumberUtil* (*probe)() = &PhoneNumberUtil::GetInstance;
    if (dladdr(reinterpret_cast<void*>(probe), &info) == 0 || info.dli_fname == nullptr) return;
    char resolved[PATH_MAX];
    const char* path = realpath(info.dli_fname, resolved) != nullptr ? resolved : info.dli_fname;
    std::strncpy(buf, path, cap - 1);
    buf[cap - 1] = '\0';
}

}  // namespace crm::core

// Matching-key normalization: the keys that customer sync matches chats to
// customers by (customer_matching_keys.normalized_value). Pure C++17.
//
//   email  trimmed, lower-cased; Gmail rules (dots, +tags) only on request
//   phone  E.164 digits without '+', by libphonenumber, with a default region
//   name   Unicode NFKC case-fold (ICU), trimmed, inner whitespace collapsed
//
// Every function returns std::nullopt ("no key") when the input normalizes to
// nothing. Invalid UTF-8 never crashes: name/email replace it with U+FFFD,
// phone falls back to the ASCII digits. Errors are exceptions
// (std::invalid_argument for an unknown region, std::bad_alloc, and
// std::runtime_error should ICU fail); src/pg turns them into SQL errors.
#pragma once
#include "core/core_only.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace crm::core {

// Phone input longer than this (in bytes) is no key, without being parsed:
// libphonenumber's parse time grows quadratically with input length and
// cannot be cancelled. 250 is libphonenumber's own kMaxInputStringLength (it
// refuses longer input anyway, after some work) and about ten times the
// longest phone number a person types, even with formatting, an extension
// and fullwidth digits (3 bytes each in UTF-8).
constexpr std::size_t kMaxPhoneInputBytes = 250;

// Name and email input longer than this (in bytes) is refused
// (std::invalid_argument) before any work: ICU's normalization of a 50 MB
// name took 10 s, with no way to cancel it from PostgreSQL. And a key longer
// than kMaxKeyBytes is refused after normalizing: the keys index
// (company_id, key_type, normalized_value) cannot hold an entry much over
// 2.6 kB, and a chat whose key failed the index INSERT would be lost.
// Refused, a key is a normalization failure: the chat is linked by its other
// email or phone key, or stored unlinked, with a warning.
constexpr std::size_t kMaxKeyInputBytes = 65536;
constexpr std::size_t kMaxKeyBytes = 2048;
// A name with a longer run of combining marks (after its NFKC case-fold
// mapping) gives no key: see normalize_name.cpp.
constexpr int kMaxCombiningRun = 30;

// Region used when the caller names none (the GUC's default).
constexpr const char* kDefaultPhoneRegion = "US";

struct EmailOptions {
    // Gmail/Googlemail only: drop dots and "+tag" from the local part and
    // map googlemail.com to gmail.com. Off by default (false merges).
    bool provider_rules = false;
};

std::optional<std::string> normalize_email(std::string_view raw, EmailOptions options = {});

// region: ISO 3166-1 alpha-2 code that libphonenumber has metadata for,
// case-insensitive, e.g. "US" or "gb". Throws std::invalid_argument naming
// the region otherwise (checked before the input is looked at).
// Extensions ("x123", "ext. 4") are dropped from the key.
std::optional<std::string> normalize_phone(std::string_view raw, std::string_view region);

std::optional<std::string> normalize_name(std::string_view raw);

// True if region (case-insensitive) is a region libphonenumber supports.
// Never throws (false if the check itself fails).
bool is_supported_region(std::string_view region) noexcept;

// Library versions that the keys depend on, written into buf (cap >= 1,
// always NUL-terminated). Never throw.
void icu_version(char* buf, std::size_t cap) noexcept;      // e.g. "72.1"
void unicode_version(char* buf, std::size_t cap) noexcept;  // e.g. "15.0"
// The libphonenumber shared object actually loaded (resolved path, which
// carries the major.minor version on Debian: libphonenumber.so.8.12), or ""
// if it cannot be told (static link). libphonenumber 8.12 has no run-time
// version API; the exact version is recorded at build time in src/pg.
void phonenumber_library_file(char* buf, std::size_t cap) noexcept;

// Forces the libraries' one-time start-up (libphonenumber metadata, ICU
// normalizer data) so that it can be measured or paid up front.
void warm_up_normalizers();

namespace detail {
// For the unit tests, which prove the two phone paths agree: the key of a
// plainly written North American number in region US without libphonenumber
// (nullopt: not such a number, the caller parses), and the key libphonenumber
// gives (what normalize_phone() computes for everything else).
std::optional<std::string> nanp_phone_key(std::string_view trimmed, std::string_view region_code);
std::optional<std::string> parsed_phone_key(std::string_view trimmed, std::string_view region_code);
}  // namespace detail

}  // namespace crm::core

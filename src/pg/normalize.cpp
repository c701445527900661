// The bridge from PostgreSQL to the src/core normalizers: normalize_key() for
// trigger code, the SQL functions crm_native.normalize_* and version_info(),
// and the GUCs crm_native.default_region and crm_native.email_provider_rules.
//
// Boundary discipline (docs/contract.md; README "The C++ boundary"): every C++ object lives and dies
// inside run_core(), a noexcept function that catches everything and returns
// a malloc'd copy of the key. Everything that talks to the backend (palloc,
// ereport, GUC hooks) is plain C-style code with no C++ object alive, so no
// longjmp ever crosses a destructor and no exception ever reaches a C frame.
#include "pg/normalize.hpp"

#include "pg/guard.hpp"
#include "pg/module.hpp"

// guc.h pulls in backend headers with unused parameters in inline functions.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "catalog/namespace.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
}
#pragma GCC diagnostic pop

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/message.hpp"
#include "core/normalize.hpp"

#ifndef CRM_NATIVE_VERSION
#define CRM_NATIVE_VERSION "unknown"
#endif
// libphonenumber 8.12 has no run-time version API: the Makefile records the
// version of the libphonenumber-dev package the module was compiled against.
#ifndef CRM_PHONENUMBER_VERSION
#define CRM_PHONENUMBER_VERSION "unknown"
#endif

namespace crm::pg {
namespace {

// GUC storage (PostgreSQL owns the string).
char* default_region_setting = nullptr;
bool email_provider_rules_setting = false;

enum class Failure { None, InvalidArgument, OutOfMemory, Internal };

struct CoreKey {
    char* bytes = nullptr;  // malloc'd, not NUL-terminated
    std::size_t length = 0;
};

void write_error(char* errbuf, std::size_t errcap, const char* text) noexcept {
    if (errbuf != nullptr && errcap > 0) crm::core::copy_message(text, errbuf, errcap);
}

// All C++ work happens here. On Normalized, key->bytes is malloc'd and the
// caller frees it.
NormalizeResult run_core(KeyType type, const char* raw, std::size_t len, const char* region,
                         bool provider_rules, CoreKey* key, Failure* failure, char* errbuf,
                         std::size_t errcap) noexcept {
    *failure = Failure::Internal;
    try {
        const std::string_view input(raw, len);
        std::optional<std::string> normalized;
        switch (type) {
            case KeyType::Email:
                normalized = crm::core::normalize_email(input, crm::core::EmailOptions{provider_rules});
                break;
            case KeyType::Phone:
                normalized = crm::core::normalize_phone(input, region);
                break;
            case KeyType::Name:
                normalized = crm::core::normalize_name(input);
                break;
        }
        if (!normalized) {
            *failure = Failure::None;
            return NormalizeResult::Empty;
        }
        void* bytes = std::malloc(normalized->size() + 1);
        if (bytes == nullptr) throw std::bad_alloc();
        std::memcpy(bytes, normalized->data(), normalized->size());
        key->bytes = static_cast<char*>(bytes);
        key->length = normalized->size();
        *failure = Failure::None;
        return NormalizeResult::Normalized;
    } catch (const std::invalid_argument& e) {
        *failure = Failure::InvalidArgument;
        write_error(errbuf, errcap, e.what());
    } catch (const std::bad_alloc&) {
        *failure = Failure::OutOfMemory;
        write_error(errbuf, errcap, "out of memory: a C++ allocation in crm_native normalization failed");
    } catch (const std::exception& e) {
        write_error(errbuf, errcap, e.what());
    } catch (...) {
        write_error(errbuf, errcap, "crm_native: unknown C++ exception during normalization");
    }
    return NormalizeResult::Failed;
}

bool has_non_ascii(const char* raw, std::size_t len) {
    for (std::size_t i = 0; i < len; ++i)
        if (static_cast<unsigned char>(raw[i]) >= 0x80) return true;
    return false;
}

// `len` bytes of `src` in encoding `from` as a malloc'd, NUL-terminated
// string in encoding `to` (PostgreSQL's default conversion, asked not to
// raise); nullptr when a character has no equivalent there or memory runs out.
char* converted_copy(int from, int to, const char* src, std::size_t len) noexcept {
    const Oid proc = FindDefaultConversionProc(from, to);
    if (!OidIsValid(proc) || len > static_cast<std::size_t>(INT_MAX / MAX_CONVERSION_GROWTH - 1)) return nullptr;
    const std::size_t cap = len * MAX_CONVERSION_GROWTH + 1;
    char* out = static_cast<char*>(std::malloc(cap));
    if (out == nullptr) return nullptr;
    const int consumed = pg_do_encoding_conversion_buf(
        proc, from, to, reinterpret_cast<unsigned char*>(const_cast<char*>(src)), static_cast<int>(len),
        reinterpret_cast<unsigned char*>(out), static_cast<int>(cap), true);
    if (consumed != static_cast<int>(len)) {
        std::free(out);
        return nullptr;
    }
    return out;
}

// normalize_key with explicit settings. On Normalized, *out points header
// bytes into a palloc'd block of header + length + 1 bytes (NUL-terminated),
// so SQL functions can build a text datum in place. Never ereports.
NormalizeResult normalize_with(KeyType type, const char* raw, std::size_t len, const char* region,
                               bool provider_rules, std::size_t header, char** out,
                               std::size_t* out_len, Failure* failure, char* errbuf,
                               std::size_t errcap) noexcept {
    *out = nullptr;
    *out_len = 0;
    *failure = Failure::None;
    if (errbuf != nullptr && errcap > 0) errbuf[0] = '\0';
    if (raw == nullptr) return NormalizeResult::Empty;
    // The core reads and writes UTF-8. In a database of another encoding
    // (LATIN1, WIN1252, EUC_JP...), non-ASCII text is converted to UTF-8 for
    // it, and the key back; a key with a character the database cannot
    // store (NFKC case-folding turns the LATIN1 micro sign into a Greek mu)
    // is refused. Both conversions are PostgreSQL's own; server text always
    // converts to UTF-8.
    const int encoding = GetDatabaseEncoding();
    // Text the core refuses by its length alone goes to it as it is, neither
    // scanned, converted nor verified: converting 300 MB took seconds no
    // cancel could stop (found by an independent review). A conversion to
    // UTF-8 shrinks text by at most a quarter (a 4-byte EUC_TW character
    // becomes 3 bytes), so over twice the core's bound is over it in UTF-8
    // too, and the core gives the answer it would have given after the
    // conversion. (Text with a character UTF-8 lacks is refused as such
    // only below that length; above it, by its length: no phone key, or an
    // error for a name or email.)
    const std::size_t core_bound =
        type == KeyType::Phone ? crm::core::kMaxPhoneInputBytes : crm::core::kMaxKeyInputBytes;
    const bool too_long_anyway = len > 2 * core_bound;
    const bool convert =
        !too_long_anyway && encoding != PG_UTF8 && encoding != PG_SQL_ASCII && has_non_ascii(raw, len);
    char* utf8 = nullptr;
    if (convert) {
        utf8 = converted_copy(encoding, PG_UTF8, raw, len);
        if (utf8 == nullptr) {
            *failure = Failure::InvalidArgument;
            write_error(errbuf, errcap, "crm_native: the text could not be converted to UTF-8 for normalizing");
            return NormalizeResult::Failed;
        }
        raw = utf8;
        len = std::strlen(utf8);
    }
    // SQL_ASCII stores any bytes. Bytes that are not UTF-8 (Latin-1 text,
    // say) would each read as U+FFFD, and "m\xfcller" and "m\xf6ller" would
    // get one key: refuse them rather than merge different people.
    if (encoding == PG_SQL_ASCII && !too_long_anyway && has_non_ascii(raw, len) &&
        !pg_verify_mbstr(PG_UTF8, raw, static_cast<int>(len), true)) {
        *failure = Failure::InvalidArgument;
        write_error(errbuf, errcap,
                    "crm_native: normalizing text that is not valid UTF-8 (in a SQL_ASCII database) is refused");
        return NormalizeResult::Failed;
    }

    CoreKey key;
    const NormalizeResult result =
        run_core(type, raw, len, region, provider_rules, &key, failure, errbuf, errcap);
    std::free(utf8);
    if (result != NormalizeResult::Normalized) return result;
    if (convert && has_non_ascii(key.bytes, key.length)) {  // ASCII is the same bytes in every server encoding
        char* stored = converted_copy(PG_UTF8, encoding, key.bytes, key.length);
        std::free(key.bytes);
        if (stored == nullptr) {
            *failure = Failure::InvalidArgument;
            write_error(errbuf, errcap,
                        "crm_native: the normalized key has a character the database encoding cannot store");
            return NormalizeResult::Failed;
        }
        key.bytes = stored;
        key.length = std::strlen(stored);
    }

    const std::size_t total = header + key.length + 1;
    char* block = nullptr;
    if (total <= MaxAllocSize) block = static_cast<char*>(palloc_extended(total, MCXT_ALLOC_NO_OOM));
    if (block == nullptr) {
        std::free(key.bytes);
        *failure = Failure::OutOfMemory;
        write_error(errbuf, errcap, "out of memory: no room for a normalized key");
        return NormalizeResult::Failed;
    }
    std::memcpy(block + header, key.bytes, key.length);
    block[header + key.length] = '\0';
    std::free(key.bytes);
    *out = block + header;
    *out_len = key.length;
    return NormalizeResult::Normalized;
}

const char* current_default_region() {
    return default_region_setting != nullptr ? default_region_setting : crm::core::kDefaultPhoneRegion;
}

// Shared body of the SQL functions: C-style, ereport only with no C++ object
// alive. The text is argument input_arg; with null_if_invalid, a value that
// cannot be normalized gives NULL (as the keys trigger writes no key for it)
// rather than an error.
Datum normalize_sql(FunctionCallInfo fcinfo, KeyType type, const char* region, bool provider_rules,
                    int input_arg = 0, bool null_if_invalid = false) {
    text* input = PG_GETARG_TEXT_PP(input_arg);
    char* key = nullptr;
    std::size_t key_len = 0;
    Failure failure = Failure::None;
    char errbuf[crm::core::kMessageCapacity];
    const NormalizeResult result = normalize_with(type, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), region,
                                                  provider_rules, VARHDRSZ, &key, &key_len, &failure,
                                                  errbuf, sizeof errbuf);
    switch (result) {
        case NormalizeResult::Normalized: {
            text* out = reinterpret_cast<text*>(key - VARHDRSZ);
            SET_VARSIZE(out, VARHDRSZ + key_len);
            PG_RETURN_TEXT_P(out);
        }
        case NormalizeResult::Empty:
            PG_RETURN_NULL();
        case NormalizeResult::Failed:
            if (null_if_invalid && failure == Failure::InvalidArgument) PG_RETURN_NULL();
            break;
    }
    const int sqlstate = failure == Failure::InvalidArgument ? ERRCODE_INVALID_PARAMETER_VALUE
                         : failure == Failure::OutOfMemory   ? ERRCODE_OUT_OF_MEMORY
                                                             : ERRCODE_INTERNAL_ERROR;
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", errbuf)));
    PG_RETURN_NULL();  // not reached
}

// crm_native._matching_key(key_type, value): the key the keys trigger
// writes for value with the current settings, or NULL when it writes none:
// an empty value, or one it cannot normalize (in a LATIN1 database a key
// LATIN1 cannot store). Maintenance and search read keys with it, so one
// such customer does not fail rebuild_matching_keys() or health() for the
// whole database. Out of memory and internal failures still raise.
Datum matching_key_sql(FunctionCallInfo fcinfo) {
    text* kind = PG_GETARG_TEXT_PP(0);
    const char* k = VARDATA_ANY(kind);
    const std::size_t klen = VARSIZE_ANY_EXHDR(kind);
    KeyType type;
    if (klen == 4 && std::memcmp(k, "name", 4) == 0) {
        type = KeyType::Name;
    } else if (klen == 5 && std::memcmp(k, "email", 5) == 0) {
        type = KeyType::Email;
    } else if (klen == 5 && std::memcmp(k, "phone", 5) == 0) {
        type = KeyType::Phone;
    } else {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("crm_native._matching_key: unknown key type (name, email or phone)")));
    }
    return normalize_sql(fcinfo, type, type == KeyType::Phone ? current_default_region() : nullptr,
                         type == KeyType::Email && email_provider_rules_setting, 1, true);
}

// Runs the libraries' one-time start-up; returns the milliseconds it took
// (about 0 once done in this backend), or -1 with errbuf set on failure.
double timed_warm_up(char* errbuf, std::size_t errcap) noexcept {
    try {
        const auto start = std::chrono::steady_clock::now();
        crm::core::warm_up_normalizers();
        const std::chrono::duration<double, std::milli> spent = std::chrono::steady_clock::now() - start;
        return spent.count();
    } catch (const std::exception& e) {
        write_error(errbuf, errcap, e.what());
    } catch (...) {
        write_error(errbuf, errcap, "crm_native: unknown C++ exception during warm-up");
    }
    return -1;
}

bool check_default_region(char** newval, void** /*extra*/, GucSource /*source*/) {
    if (*newval == nullptr) return false;
    // The boot value needs no check; this also keeps libphonenumber's
    // metadata from loading when the module loads, before any phone is seen.
    if (std::strcmp(*newval, crm::core::kDefaultPhoneRegion) == 0) return true;
    if (crm::core::is_supported_region(*newval)) return true;
    GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
    GUC_check_errmsg("unknown phone region \"%s\"", *newval);
    GUC_check_errhint("Use an ISO 3166-1 two-letter region code that libphonenumber supports, such as US, GB or DE.");
    return false;
}

}  // namespace

NormalizeResult normalize_key(KeyType type, const char* raw, std::size_t len, char** out, char* errbuf,
                              std::size_t errcap) noexcept {
    std::size_t out_len = 0;
    Failure failure = Failure::None;
    return normalize_with(type, raw, len, current_default_region(), email_provider_rules_setting, 0, out,
                          &out_len, &failure, errbuf, errcap);
}

void define_normalization_gucs() {
    DefineCustomStringVariable(
        "crm_native.default_region",
        "Region for phone numbers written without a country code (ISO 3166-1, e.g. US).",
        "Used by crm_native.normalize_phone(text) and by the native triggers' phone matching keys. "
        "Changing it changes the keys of national numbers: rebuild the keys after a change.",
        &default_region_setting, crm::core::kDefaultPhoneRegion, PGC_USERSET, 0, check_default_region,
        nullptr, nullptr);
    DefineCustomBoolVariable(
        "crm_native.email_provider_rules",
        "Apply Gmail address rules (ignore dots and +tags) to email matching keys.",
        "Off by default: merges addresses that Gmail delivers to one mailbox, at the risk of merging "
        "distinct people. Changing it changes keys: rebuild the keys after a change.",
        &email_provider_rules_setting, false, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

}  // namespace crm::pg

extern "C" {
PG_FUNCTION_INFO_V1(crm_normalize_email);
PG_FUNCTION_INFO_V1(crm_matching_key);
PG_FUNCTION_INFO_V1(crm_normalize_email_rules);
PG_FUNCTION_INFO_V1(crm_normalize_phone);
PG_FUNCTION_INFO_V1(crm_normalize_phone_region);
PG_FUNCTION_INFO_V1(crm_normalize_name);
PG_FUNCTION_INFO_V1(crm_normalization_version_info);
PG_FUNCTION_INFO_V1(crm_normalization_warm_up);
}

using crm::pg::KeyType;

Datum crm_matching_key(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum { return crm::pg::matching_key_sql(fcinfo); });
}

// crm_native.normalize_email(text): provider rules per the GUC.
Datum crm_normalize_email(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        return crm::pg::normalize_sql(fcinfo, KeyType::Email, nullptr, crm::pg::email_provider_rules_setting);
    });
}

// crm_native.normalize_email(text, provider_rules boolean)
Datum crm_normalize_email_rules(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        return crm::pg::normalize_sql(fcinfo, KeyType::Email, nullptr, PG_GETARG_BOOL(1));
    });
}

// crm_native.normalize_phone(text): region per the GUC.
Datum crm_normalize_phone(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        return crm::pg::normalize_sql(fcinfo, KeyType::Phone, crm::pg::current_default_region(), false);
    });
}

// crm_native.normalize_phone(text, region text)
Datum crm_normalize_phone_region(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        const char* region = text_to_cstring(PG_GETARG_TEXT_PP(1));
        return crm::pg::normalize_sql(fcinfo, KeyType::Phone, region, false);
    });
}

// crm_native.normalize_name(text)
Datum crm_normalize_name(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum {
        return crm::pg::normalize_sql(fcinfo, KeyType::Name, nullptr, false);
    });
}

// crm_native.version_info(): jsonb with the versions the keys depend on.
namespace {
Datum version_info() {
    char icu[64];
    char unicode[64];
    char phonenumber_file[1024];
    crm::core::icu_version(icu, sizeof icu);
    crm::core::unicode_version(unicode, sizeof unicode);
    crm::core::phonenumber_library_file(phonenumber_file, sizeof phonenumber_file);

    StringInfoData json;
    initStringInfo(&json);
    appendStringInfoString(&json, "{\"crm_native\": ");
    escape_json(&json, CRM_NATIVE_VERSION);
    appendStringInfoString(&json, ", \"icu\": ");
    escape_json(&json, icu);
    appendStringInfoString(&json, ", \"unicode\": ");
    escape_json(&json, unicode);
    appendStringInfoString(&json, ", \"libphonenumber\": ");
    escape_json(&json, CRM_PHONENUMBER_VERSION);
    appendStringInfoString(&json, ", \"libphonenumber_version_source\": ");
    escape_json(&json, "build time (libphonenumber 8.12 has no run-time version API)");
    appendStringInfoString(&json, ", \"libphonenumber_library\": ");
    escape_json(&json, phonenumber_file);
    appendStringInfoString(&json, ", \"phone_input_max_bytes\": ");
    appendStringInfo(&json, "%zu", crm::core::kMaxPhoneInputBytes);
    appendStringInfoChar(&json, '}');
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data));
}
}  // namespace

Datum crm_normalization_version_info(PG_FUNCTION_ARGS) {
    (void)fcinfo;
    return crm::pg::run_guarded([]() -> Datum { return version_info(); });
}

// crm_native._normalization_warm_up(): loads libphonenumber's metadata and
// ICU's normalizer data now, and returns how long that took in this backend
// (milliseconds; about 0 when already loaded). For measurement, and for
// connection poolers that want to pay the start-up cost up front.
Datum crm_normalization_warm_up(PG_FUNCTION_ARGS) {
    (void)fcinfo;
    return crm::pg::run_guarded([]() -> Datum {
        char errbuf[crm::core::kMessageCapacity];
        errbuf[0] = '\0';
        const double ms = crm::pg::timed_warm_up(errbuf, sizeof errbuf);
        if (ms < 0) ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("%s", errbuf)));
        return Float8GetDatum(ms);
    });
}

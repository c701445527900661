// Email keys: trimmed and lower-cased, as the plpgsql lower(trim()) did, but
// with Unicode whitespace and Unicode lower-casing (internationalized
// addresses). Provider rules only when the caller opts in.
#include "core/normalize.hpp"
#include "core/normalize_text.hpp"

#include <unicode/uchar.h>
#include <unicode/unistr.h>

namespace crm::core {
namespace {

// Each code point by its own (simple) lower-case mapping, as PostgreSQL's
// lower() does under a libc UTF-8 locale (the plpgsql triggers' lower(trim())):
// 'İ' gives 'i' and a final 'Σ' gives 'σ', where ICU's full, context-aware
// mapping gives "i" + U+0307 and 'ς', keys no lower() would produce.
std::string lower_case(std::string_view s) {
    if (text::is_ascii(s)) return text::ascii_lower(s);
    // Invalid UTF-8 becomes U+FFFD here, so the key is always valid UTF-8.
    icu::UnicodeString unicode = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
    icu::UnicodeString lowered;
    for (int32_t i = 0; i < unicode.length();) {
        const UChar32 c = unicode.char32At(i);
        lowered.append(u_tolower(c));
        i += U16_LENGTH(c);
    }
    std::string out;
    lowered.toUTF8String(out);
    return out;
}

// Gmail ignores dots in the local part and everything from a '+', and
// googlemail.com is the same mailbox as gmail.com. Only those two domains:
// other providers' rules differ (dots are significant at most of them). Only
// for plausible Gmail user names (letters, digits, dots before the '+'):
// anything else is left as typed rather than squeezed into someone's key.
void apply_gmail_rules(std::string& email) {
    const std::size_t at = email.rfind('@');
    if (at == std::string::npos) return;
    const std::string_view domain = std::string_view(email).substr(at + 1);
    if (domain != "gmail.com" && domain != "googlemail.com") return;
    std::string user;
    for (char ch : std::string_view(email).substr(0, at)) {
        if (ch == '+') break;
        if (ch == '.') continue;
        const bool gmail_char = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!gmail_char) return;
        user.push_back(ch);
    }
    // "+tag@gmail.com" or ".@gmail.com" has no mailbox left: keep the address
    // as typed rather than invent the key "@gmail.com" shared by all of them.
    if (user.empty()) return;
    email = user + "@gmail.com";
}

}  // namespace

std::optional<std::string> normalize_email(std::string_view raw, EmailOptions options) {
    text::require_key_input_length(raw, "email");
    const std::string_view trimmed = text::trim_space(raw);
    if (trimmed.empty()) return std::nullopt;
    std::string email = lower_case(trimmed);
    if (options.provider_rules) apply_gmail_rules(email);
    if (email.empty()) return std::nullopt;
    text::require_key_length(email, "email");
    return email;
}

}  // namespace crm::core

// Name keys: Unicode NFKC case-fold (ICU), so that "Ｊｏｈｎ", "JOHN" and "john"
// meet, ligatures split ("ﬁ" -> "fi"), "ß" folds to "ss" and default-ignorable
// characters (zero-width space, soft hyphen) vanish; then trimmed, with every
// run of Unicode whitespace inside collapsed to one space.
#include "core/normalize.hpp"
#include "core/normalize_text.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <stdexcept>
#include <string>

namespace crm::core {
namespace {

const icu::Normalizer2& nfkc_casefold() {
    // ICU owns the instance; it lives until the process ends.
    static const icu::Normalizer2* const instance = [] {
        UErrorCode status = U_ZERO_ERROR;
        const icu::Normalizer2* n = icu::Normalizer2::getNFKCCasefoldInstance(status);
        if (U_FAILURE(status) || n == nullptr)
            throw std::runtime_error(std::string("crm_native: ICU NFKC case-fold data unavailable: ") + u_errorName(status));
        return n;
    }();
    return *instance;
}

// ICU puts each run of combining marks (non-starters) of the decomposed text
// in canonical order with an insertion sort: quadratic in the run's length,
// and not interruptible. A 64 kB name of 32,000 alternating marks took
// 0.7 s that no cancel could stop (found by an independent review). Unicode
// bounds such runs at 30 (UAX #15, Stream-Safe Text Format); no text in any
// script needs more. Counted on each code point's NFKC case-fold mapping, as
// ICU decomposes it (U+0F73 and U+FF9E are starters whose mappings are
// marks).
void require_stream_safe(const icu::Normalizer2& fold, const icu::UnicodeString& source) {
    int32_t run = 0;
    icu::UnicodeString mapping;
    const auto count = [&](UChar32 c) {
        run = fold.getCombiningClass(c) != 0 ? run + 1 : 0;
        if (run > kMaxCombiningRun)
            throw std::invalid_argument("crm_native: a name with more than " + std::to_string(kMaxCombiningRun) +
                                        " combining marks in a row (Unicode's stream-safe limit) gives no key");
    };
    for (int32_t i = 0; i < source.length();) {
        const UChar32 c = source.char32At(i);
        i += U16_LENGTH(c);
        if (!fold.getDecomposition(c, mapping)) {
            count(c);
            continue;
        }
        for (int32_t j = 0; j < mapping.length();) {
            const UChar32 m = mapping.char32At(j);
            j += U16_LENGTH(m);
            count(m);
        }
    }
}

}  // namespace

std::optional<std::string> normalize_name(std::string_view raw) {
    text::require_key_input_length(raw, "name");
    // Invalid UTF-8 becomes U+FFFD here, so the key is always valid UTF-8.
    const icu::UnicodeString source =
        icu::UnicodeString::fromUTF8(icu::StringPiece(raw.data(), static_cast<int32_t>(raw.size())));
    require_stream_safe(nfkc_casefold(), source);
    UErrorCode status = U_ZERO_ERROR;
    const icu::UnicodeString folded = nfkc_casefold().normalize(source, status);
    if (U_FAILURE(status))
        throw std::runtime_error(std::string("crm_native: ICU name normalization failed: ") + u_errorName(status));

    icu::UnicodeString collapsed;
    bool space_pending = false;
    for (int32_t i = 0; i < folded.length();) {
        const UChar32 c = folded.char32At(i);
        i += U16_LENGTH(c);
        if (u_isUWhiteSpace(c)) {
            space_pending = true;
            continue;
        }
        if (space_pending && !collapsed.isEmpty()) collapsed.append(static_cast<UChar>(u' '));
        space_pending = false;
        collapsed.append(c);
    }
    if (collapsed.isEmpty()) return std::nullopt;
    std::string out;
    collapsed.toUTF8String(out);
    text::require_key_length(out, "name");
    return out;
}

namespace detail {
void warm_up_name_normalizer() { (void)nfkc_casefold(); }
}  // namespace detail

}  // namespace crm::core

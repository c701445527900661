// Table-driven tests of the matching-key normalizers (src/core/normalize.hpp).
// Each row is a real-world way people type a contact detail, and the key it
// must produce ("<none>" = no key).
#include <boost/test/unit_test.hpp>

#include <unicode/uversion.h>

#include <chrono>
#include <random>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/normalize.hpp"

using crm::core::EmailOptions;
using crm::core::kMaxKeyBytes;
using crm::core::kMaxKeyInputBytes;
using crm::core::normalize_email;
using crm::core::normalize_name;
using crm::core::normalize_phone;

namespace {

const char* const kNone = "<none>";

std::string show(const std::optional<std::string>& key) { return key ? *key : kNone; }

struct PhoneCase {
    const char* input;
    const char* region;
    const char* expected;
    const char* why;
};

struct TextCase {
    const char* input;
    const char* expected;
    const char* why;
};

struct EmailCase {
    const char* input;
    bool provider_rules;
    const char* expected;
    const char* why;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(normalize_phone_keys)

BOOST_AUTO_TEST_CASE(real_world_formats) {
    const std::vector<PhoneCase> cases = {
        // the contract's answers
        {"+1-555-123-4567", "US", "15551234567", "international, dashes"},
        {"(555) 123-4567", "US", "15551234567", "national, parentheses"},
        // other North American spellings
        {"555.123.4567", "US", "15551234567", "dots"},
        {"5551234567", "US", "15551234567", "bare national digits"},
        {"1 (555) 123-4567", "US", "15551234567", "national prefix 1"},
        {"+1 555 123 4567", "US", "15551234567", "spaces"},
        {"  +1 (555) 123-4567  ", "US", "15551234567", "surrounding blanks"},
        {"tel:+1-555-123-4567", "US", "15551234567", "RFC 3966 URI"},
        // international numbers, read the same whatever the default region
        {"+44 20 7946 0958", "US", "442079460958", "UK, international"},
        {"011 44 20 7946 0958", "US", "442079460958", "UK dialled from the US (IDD 011)"},
        {"00 44 20 7946 0958", "DE", "442079460958", "UK dialled from Germany (IDD 00)"},
        {"020 7946 0958", "GB", "442079460958", "UK, national with trunk 0"},
        {"+44 (0)20 7946 0958", "US", "442079460958", "UK, '(0)' trunk in an international number"},
        {"+49 30 1234567", "US", "49301234567", "Germany"},
        {"030 1234567", "DE", "49301234567", "Germany, national"},
        {"+33 1 23 45 67 89", "US", "33123456789", "France"},
        {"01 23 45 67 89", "FR", "33123456789", "France, national"},
        {"+39 06 1234 5678", "US", "390612345678", "Italy keeps its leading zero"},
        {"06 1234 5678", "IT", "390612345678", "Italy, national"},
        {"+81 3-1234-5678", "US", "81312345678", "Japan"},
        {"+61 2 9876 5432", "US", "61298765432", "Australia"},
        {"+91 98765 43210", "US", "919876543210", "India mobile"},
        {"(11) 98765-4321", "BR", "5511987654321", "Brazil mobile, national"},
        // extensions are not part of the key
        {"555-123-4567 ext. 89", "US", "15551234567", "extension 'ext.'"},
        {"555-123-4567 x89", "US", "15551234567", "extension 'x'"},
        {"+1 555 123 4567;ext=89", "US", "15551234567", "RFC 3966 extension"},
        {"+44 20 7946 0958 ext 123", "US", "442079460958", "UK with extension"},
        // vanity letters
        {"1-800-FLOWERS", "US", "18003569377", "vanity number"},
        {"1-800-GOT-JUNK", "US", "18004685865", "vanity number with dashes"},
        {"+1 800 flowers", "US", "18003569377", "lower-case vanity"},
        // other digit forms
        {"\xEF\xBC\x8B\xEF\xBC\x91 \xEF\xBC\x95\xEF\xBC\x95\xEF\xBC\x95 \xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93 "
         "\xEF\xBC\x94\xEF\xBC\x95\xEF\xBC\x96\xEF\xBC\x97",
         "US", "15551234567", "fullwidth '＋１ ５５５ １２３ ４５６７'"},
        {"(\xEF\xBC\x95\xEF\xBC\x95\xEF\xBC\x95) \xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93-\xEF\xBC\x94\xEF\xBC\x95"
         "\xEF\xBC\x96\xEF\xBC\x97",
         "US", "15551234567", "fullwidth national"},
        {"+\xD9\xA9\xD9\xA7\xD9\xA1 \xD9\xA5\xD9\xA0 \xD9\xA1\xD9\xA2\xD9\xA3 \xD9\xA4\xD9\xA5\xD9\xA6\xD9\xA7", "US",
         "971501234567", "Arabic-Indic digits (UAE mobile)"},
        {"\xC2\xA0+1 555 123 4567\xE3\x80\x80", "US", "15551234567", "NBSP and ideographic space around"},
        // input libphonenumber cannot read as a complete number: its digits
        {"12345", "US", "12345", "too short for any US number"},
        {"123-4567", "US", "1234567", "local-only (no area code): digits, not a made-up E.164"},
        {"+999 123 456", "US", "999123456", "unknown country code"},
        {"555-123-45678", "US", "55512345678", "too long for the US"},
        {"\xFF" "555 123 4567", "US", "5551234567", "invalid UTF-8: ASCII digits only"},
        // no key
        {"", "US", kNone, "empty"},
        {"   ", "US", kNone, "blanks"},
        {"\t\n\xC2\xA0\xE3\x80\x80", "US", kNone, "Unicode whitespace only"},
        {"n/a", "US", kNone, "no digits"},
        {"---", "US", kNone, "punctuation only"},
        // region is case-insensitive
        {"020 7946 0958", "gb", "442079460958", "lower-case region"},
    };
    for (const PhoneCase& c : cases) {
        BOOST_TEST_CONTEXT(c.why << ": '" << c.input << "' region " << c.region) {
            BOOST_TEST(show(normalize_phone(c.input, c.region)) == c.expected);
            // the second time the key comes from the per-thread cache
            BOOST_TEST(show(normalize_phone(c.input, c.region)) == c.expected);
        }
    }
}

// The North American fast path (normalize_phone.cpp, detail::nanp_phone_key)
// must give exactly libphonenumber's key wherever it answers: on the edge
// cases below and on 300,000 random strings of digits, separators and plus
// signs shaped like phone numbers. It must also answer for the common
// spellings (else it saves nothing).
BOOST_AUTO_TEST_CASE(nanp_fast_path_agrees_with_libphonenumber) {
    using crm::core::detail::nanp_phone_key;
    using crm::core::detail::parsed_phone_key;
    const std::vector<std::string> edges = {
        "+1-555-123-4567", "(555) 123-4567", "555.123.4567", "5551234567", "1 (555) 123-4567", "+1 555 123 4567",
        "15551234567", "+15551234567", "+1 (555) 123-4567", "(((555)))1234567", "555-123-4567)", ")555-123-4567",
        "-5551234567", "5551234567-", "..5551234567..", "1-5551234567", "+1--555--123--4567", "2015550123",
        "12015550123", "+12015550123", "9995550123", "1 999 555 0123", "(201) 555-0123", "201 555 0123",
        // not answered by the fast path (parsed): area codes 0/1, +1 without
        // the area rule, other country codes, wrong lengths, other characters
        "0551234567", "1055512345", "11551234567", "+1055512345", "+11551234567", "+5551234567", "555123456",
        "555123456789", "+44 20 7946 0958", "555-123-4567 x89", "555/123/4567", "+ 1 555 123 4567", "++15551234567",
        "1+5551234567"};
    int answered = 0;
    for (const std::string& input : edges) {
        BOOST_TEST_CONTEXT("'" << input << "'") {
            const auto fast = nanp_phone_key(input, "US");
            if (fast) {
                answered++;
                BOOST_TEST(*fast == show(parsed_phone_key(input, "US")));
            }
            BOOST_TEST(!nanp_phone_key(input, "GB"));  // region US only
        }
    }
    BOOST_TEST(answered >= 24);  // the common spellings take the fast path

    std::mt19937 random(20261201);
    const std::string separators = " -.()";
    int compared = 0;
    for (int i = 0; i < 300000; i++) {
        std::string input;
        int shape = static_cast<int>(random() % 4);
        if (shape == 0) input = "+";
        if (shape == 1) input = "+1";
        // mostly 10 or 11 digits (the lengths the fast path answers), some 8-13
        int ndigits = random() % 3 != 0 ? 10 + static_cast<int>(random() % 2) : 8 + static_cast<int>(random() % 6);
        for (int d = 0; d < ndigits; d++) {
            while (random() % 4 == 0) input.push_back(separators[random() % separators.size()]);
            // first digits biased towards 0/1 to hit the area-code rules
            int digit = d < 2 && random() % 2 == 0 ? static_cast<int>(random() % 2) : static_cast<int>(random() % 10);
            input.push_back(static_cast<char>('0' + digit));
        }
        while (random() % 4 == 0) input.push_back(separators[random() % separators.size()]);
        const auto fast = nanp_phone_key(input, "US");
        if (!fast) continue;
        compared++;
        const std::string slow = show(parsed_phone_key(input, "US"));
        if (*fast != slow) {
            BOOST_ERROR("fast path '" << *fast << "' != libphonenumber '" << slow << "' for '" << input << "'");
            break;
        }
    }
    BOOST_TEST_MESSAGE("fast path compared with libphonenumber on " << compared << " random inputs");
    BOOST_TEST(compared > 30000);
}

BOOST_AUTO_TEST_CASE(region_changes_national_numbers_only) {
    BOOST_TEST(show(normalize_phone("020 7946 0958", "GB")) == "442079460958");
    BOOST_TEST(show(normalize_phone("020 7946 0958", "US")) != "442079460958");
    BOOST_TEST(show(normalize_phone("+44 20 7946 0958", "GB")) == show(normalize_phone("+44 20 7946 0958", "JP")));
}

BOOST_AUTO_TEST_CASE(unknown_region_is_an_error_naming_it) {
    for (const char* region : {"XX", "ZZ", "USA", "", "001", "U", "u s"}) {
        BOOST_TEST_CONTEXT("region '" << region << "'") {
            try {
                (void)normalize_phone("555-123-4567", region);
                BOOST_ERROR("no exception");
            } catch (const std::invalid_argument& e) {
                BOOST_TEST(std::string(e.what()).find(std::string("\"") + region + "\"") != std::string::npos);
            }
        }
    }
    // checked even when the input has no key
    BOOST_CHECK_THROW((void)normalize_phone("", "XX"), std::invalid_argument);
    // a huge region is quoted shortened
    try {
        (void)normalize_phone("1", std::string(100000, 'Q'));
        BOOST_ERROR("no exception");
    } catch (const std::invalid_argument& e) {
        BOOST_TEST(std::string(e.what()).size() < 300u);
    }
}

BOOST_AUTO_TEST_CASE(supported_regions) {
    BOOST_TEST(crm::core::is_supported_region("US"));
    BOOST_TEST(crm::core::is_supported_region("gb"));
    BOOST_TEST(crm::core::is_supported_region("DE"));
    BOOST_TEST(!crm::core::is_supported_region("XX"));
    BOOST_TEST(!crm::core::is_supported_region(""));
    BOOST_TEST(!crm::core::is_supported_region("USA"));
    BOOST_TEST(!crm::core::is_supported_region("001"));
}

BOOST_AUTO_TEST_CASE(input_over_the_bound_is_no_key_without_parsing) {
    const std::size_t bound = crm::core::kMaxPhoneInputBytes;
    // exactly at the bound: still read
    std::string padded = "+1 555 123 4567";
    padded.append(bound - padded.size(), ' ');
    BOOST_TEST(show(normalize_phone(padded, "US")) == "15551234567");
    // one byte over: no key, even though it holds a number
    BOOST_TEST(show(normalize_phone(padded + " ", "US")) == kNone);
    // a megabyte of digits returns at once (libphonenumber would take long)
    const auto start = std::chrono::steady_clock::now();
    BOOST_TEST(show(normalize_phone(std::string(1 << 20, '5'), "US")) == kNone);
    // the worst input under the bound stays fast (generous margin)
    (void)normalize_phone(std::string(bound, '5'), "US");
    (void)normalize_phone(std::string(bound / 2, 'x') + std::string(bound / 2, '5'), "US");
    const std::chrono::duration<double> spent = std::chrono::steady_clock::now() - start;
    BOOST_TEST(spent.count() < 2.0);
}

BOOST_AUTO_TEST_CASE(cache_keeps_regions_apart_and_survives_filling_up) {
    // same text, different regions: different keys (the cache keys on both)
    BOOST_TEST(show(normalize_phone("020 7946 0958", "GB")) == "442079460958");
    BOOST_TEST(show(normalize_phone("020 7946 0958", "US")) == "02079460958");  // not a US number: digits
    BOOST_TEST(show(normalize_phone("020 7946 0958", "GB")) == "442079460958");
    // more distinct numbers than the cache holds: every key still right
    for (int i = 0; i < 5000; ++i) {
        const std::string n = std::to_string(1000 + i % 9000);
        BOOST_TEST_REQUIRE(show(normalize_phone("+1 (555) 123-" + n, "US")) == "1555123" + n);
    }
}

BOOST_AUTO_TEST_CASE(keys_are_ascii_digits) {
    for (const char* input : {"+1-555-123-4567", "1-800-FLOWERS", "\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93", "x1y2z3"}) {
        const auto key = normalize_phone(input, "US");
        BOOST_TEST_REQUIRE(key.has_value());
        BOOST_TEST(key->find_first_not_of("0123456789") == std::string::npos);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(normalize_name_keys)

BOOST_AUTO_TEST_CASE(real_world_names) {
    const std::vector<TextCase> cases = {
        {"John Doe", "john doe", "plain"},
        {"  John   Doe  ", "john doe", "blanks trimmed and collapsed"},
        {"JOHN\tDOE\r\n", "john doe", "tab and CRLF"},
        {"Mary\xC2\xA0" "Ann", "mary ann", "no-break space"},
        {"Mary\xE2\x80\x83\xE2\x80\x83" "Ann", "mary ann", "em spaces"},
        {"\xE5\xB1\xB1\xE7\x94\xB0\xE3\x80\x80\xE5\xA4\xAA\xE9\x83\x8E", "\xE5\xB1\xB1\xE7\x94\xB0 \xE5\xA4\xAA\xE9\x83\x8E",
         "山田　太郎: ideographic space"},
        {"\xEF\xBC\xAA\xEF\xBD\x8F\xEF\xBD\x88\xEF\xBD\x8E", "john", "fullwidth 'Ｊｏｈｎ'"},
        {"\xEF\xAC\x81ona", "fiona", "ligature 'ﬁ'"},
        {"Stra\xC3\x9F" "e", "strasse", "German sharp s"},
        {"STRASSE", "strasse", "meets 'Straße'"},
        {"\xE1\xBA\x9E", "ss", "capital sharp s 'ẞ'"},
        {"\xC4\xB0stanbul", "i\xCC\x87stanbul", "Turkish dotted capital İ: i + combining dot (no Turkish locale)"},
        {"ISTANBUL", "istanbul", "plain I folds to i, not dotless ı"},
        {"\xC4\xB1sparta", "\xC4\xB1sparta", "dotless ı stays"},
        {"Jos\xC3\xA9", "jos\xC3\xA9", "precomposed é"},
        {"Jose\xCC\x81", "jos\xC3\xA9", "decomposed e + acute meets precomposed"},
        {"M\xC3\x9CLLER", "m\xC3\xBCller", "MÜLLER"},
        {"\xCE\xA3\xCE\x8A\xCE\xA3\xCE\xA5\xCE\xA6\xCE\x9F\xCE\xA3", "\xCF\x83\xCE\xAF\xCF\x83\xCF\x85\xCF\x86\xCE\xBF\xCF\x83",
         "Greek ΣΊΣΥΦΟΣ: case-fold gives σ, also at the end"},
        {"Jo\xE2\x80\x8Bhn", "john", "zero-width space vanishes"},
        {"Jo\xC2\xADhn", "john", "soft hyphen vanishes"},
        {"Louis \xE2\x85\xAB", "louis xii", "Roman numeral Ⅻ"},
        {"Ana \xF0\x9F\x98\x80", "ana \xF0\x9F\x98\x80", "emoji kept"},
        {"O'Brien-Smith", "o'brien-smith", "punctuation kept"},
        {"Jo\xFFhn", "jo\xEF\xBF\xBDhn", "invalid UTF-8 becomes U+FFFD"},
        {"", kNone, "empty"},
        {"   ", kNone, "blanks"},
        {"\t\r\n\xC2\xA0\xE3\x80\x80", kNone, "Unicode whitespace only"},
        {"\xE2\x80\x8B\xE2\x80\x8B", kNone, "zero-width spaces only"},
    };
    for (const TextCase& c : cases) {
        BOOST_TEST_CONTEXT(c.why << ": '" << c.input << "'") {
            BOOST_TEST(show(normalize_name(c.input)) == c.expected);
        }
    }
}

BOOST_AUTO_TEST_CASE(keys_are_stable) {
    for (const char* input : {"  Ｊｏｈｎ   DOE ", "Stra\xC3\x9F" "e", "\xC4\xB0stanbul", "\xEF\xAC\x81ona"}) {
        const auto once = normalize_name(input);
        BOOST_TEST_REQUIRE(once.has_value());
        BOOST_TEST(show(normalize_name(*once)) == *once);
    }
}

BOOST_AUTO_TEST_CASE(a_long_name_within_the_bounds) {
    std::string big;  // 65,408 bytes in, mostly spaces: a 1,532-byte key
    for (int i = 0; i < 511; ++i) big += "Ab" + std::string(126, ' ');
    BOOST_TEST_REQUIRE(big.size() <= kMaxKeyInputBytes);
    const auto key = normalize_name(big);
    BOOST_TEST_REQUIRE(key.has_value());
    BOOST_TEST(key->find("  ") == std::string::npos);
    BOOST_TEST(key->substr(0, 8) == "ab ab ab");
    BOOST_TEST(key->size() <= kMaxKeyBytes);
}

// Over 64 kB of input, or over 2 kB of key, is refused (a normalization
// failure: the chat is stored unlinked), before ICU sees a megabyte.
BOOST_AUTO_TEST_CASE(a_megabyte_name_is_refused) {
    std::string big;
    for (int i = 0; i < 100000; ++i) big += "Ab  Cd \xEF\xAC\x81";
    BOOST_CHECK_THROW(normalize_name(big), std::invalid_argument);
    BOOST_CHECK_THROW(normalize_name(std::string(kMaxKeyInputBytes + 1, ' ')), std::invalid_argument);
    // a ligature folds to "fi": 1,024 of them give a 2,048-byte key, one more is too long
    std::string ligatures;
    for (int i = 0; i < 1024; ++i) ligatures += "\xEF\xAC\x81";
    BOOST_TEST(normalize_name(ligatures)->size() == 2048u);
    BOOST_CHECK_THROW(normalize_name(ligatures + "\xEF\xAC\x81"), std::invalid_argument);
}

// ICU sorts each run of combining marks with an insertion sort: a 64 kB
// name of alternating marks took 0.7 s, uncancellable. More than 30 in a
// row (Unicode's stream-safe limit) is refused before ICU normalizes; the
// run is counted on what each code point maps to.
BOOST_AUTO_TEST_CASE(a_long_run_of_combining_marks_is_refused) {
    const std::string acute = "\xCC\x81", below = "\xCC\x96";  // U+0301 (class 230), U+0316 (class 220)
    std::string thirty = "a";
    for (int i = 0; i < 15; ++i) thirty += acute + below;
    const auto key = normalize_name(thirty + " b");
    BOOST_TEST_REQUIRE(key.has_value());
    BOOST_TEST(key->substr(key->size() - 2) == " b");
    BOOST_CHECK_THROW(normalize_name(thirty + acute), std::invalid_argument);
    // a run ends at a starter: 30 marks, a letter, 30 marks
    BOOST_TEST(normalize_name(thirty + thirty).has_value());
    // the worst case the review found: refused, not sorted
    std::string attack = "a";
    for (int i = 0; i < 16380; ++i) attack += acute;
    for (int i = 0; i < 16380; ++i) attack += below;
    BOOST_CHECK_THROW(normalize_name(attack), std::invalid_argument);
    // starters whose mappings are marks: Tibetan U+0F73 (two marks each),
    // halfwidth katakana voiced sound mark U+FF9E (maps to U+3099)
    std::string tibetan = "\xE0\xBD\x80";  // U+0F40 KA
    for (int i = 0; i < 15; ++i) tibetan += "\xE0\xBD\xB3";
    BOOST_TEST(normalize_name(tibetan).has_value());
    BOOST_CHECK_THROW(normalize_name(tibetan + "\xE0\xBD\xB3"), std::invalid_argument);
    std::string voiced = "\xEF\xBD\xB6";  // U+FF76 halfwidth KA
    for (int i = 0; i < 31; ++i) voiced += "\xEF\xBE\x9E";
    BOOST_CHECK_THROW(normalize_name(voiced), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(normalize_email_keys)

BOOST_AUTO_TEST_CASE(real_world_emails) {
    const std::vector<EmailCase> cases = {
        {"John.Doe@Example.COM", false, "john.doe@example.com", "mixed case"},
        {"  john@example.com\t", false, "john@example.com", "blanks and tab"},
        {"\xC2\xA0john@example.com\xE3\x80\x80", false, "john@example.com", "NBSP, ideographic space"},
        {"\xC3\x89MILE@EXAMPLE.FR", false, "\xC3\xA9mile@example.fr", "non-ASCII local part ÉMILE"},
        {"\xC4\xB0NFO@F\xC4\xB0RMA.COM", false, "info@firma.com", "Turkish İ: i, as lower() (not i + U+0307)"},
        {"\xCE\xA3\xCE\xA3@GR.COM", false, "\xCF\x83\xCF\x83@gr.com", "Greek ΣΣ: σσ, as lower() (no final ς)"},
        {"STRA\xC3\x9F" "E@X.DE", false, "stra\xC3\x9F" "e@x.de", "ß kept (lower-cased, not case-folded)"},
        {"John.Doe+news@gmail.com", false, "john.doe+news@gmail.com", "Gmail, rules off: kept"},
        {"John.Doe+news@GMail.com", true, "johndoe@gmail.com", "Gmail rules: dots and +tag"},
        {"j.o.h.n@GoogleMail.com", true, "john@gmail.com", "googlemail.com is gmail.com"},
        {"john.doe+x@example.com", true, "john.doe+x@example.com", "rules only for Gmail"},
        {"john.doe@gmail.com.evil.example", true, "john.doe@gmail.com.evil.example", "look-alike domain"},
        {"+tag@gmail.com", true, "+tag@gmail.com", "no mailbox left: kept as typed"},
        {"not-an-email", true, "not-an-email", "no @: kept"},
        {"j o.hn@gmail.com", true, "j o.hn@gmail.com", "not a Gmail user name (space): kept"},
        {"\xC3\xA9.mile@gmail.com", true, "\xC3\xA9.mile@gmail.com", "not a Gmail user name (é): kept"},
        {"John.Doe+a b@gmail.com", true, "johndoe@gmail.com", "anything goes in the tag"},
        {"", false, kNone, "empty"},
        {"   ", true, kNone, "blanks"},
        {"\t\xC2\xA0\n", false, kNone, "Unicode whitespace only"},
        {"JO\xFFHN@EXAMPLE.COM", false, "jo\xEF\xBF\xBDhn@example.com", "invalid UTF-8 becomes U+FFFD"},
    };
    for (const EmailCase& c : cases) {
        BOOST_TEST_CONTEXT(c.why << ": '" << c.input << "' rules " << c.provider_rules) {
            BOOST_TEST(show(normalize_email(c.input, EmailOptions{c.provider_rules})) == c.expected);
        }
    }
}

BOOST_AUTO_TEST_CASE(long_emails_are_refused) {
    BOOST_TEST(normalize_email(std::string(kMaxKeyBytes, 'A'))->size() == kMaxKeyBytes);
    BOOST_CHECK_THROW(normalize_email(std::string(kMaxKeyBytes + 1, 'A')), std::invalid_argument);
    BOOST_CHECK_THROW(normalize_email(std::string(1048576, 'A')), std::invalid_argument);
    // surrounding spaces count against the input bound only
    BOOST_TEST(normalize_email("  " + std::string(kMaxKeyBytes, 'a') + "  ")->size() == kMaxKeyBytes);
}

BOOST_AUTO_TEST_CASE(rules_are_off_by_default) {
    BOOST_TEST(show(normalize_email("a.b+c@gmail.com")) == "a.b+c@gmail.com");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(normalize_versions)

BOOST_AUTO_TEST_CASE(versions_are_reported) {
    char buf[64];
    crm::core::icu_version(buf, sizeof buf);
    BOOST_TEST(std::string(buf) == U_ICU_VERSION);
    crm::core::unicode_version(buf, sizeof buf);
    BOOST_TEST(!std::string(buf).empty());
    char path[4096];
    crm::core::phonenumber_library_file(path, sizeof path);
    BOOST_TEST(std::string(path).find("phonenumber") != std::string::npos);
    char tiny[1];
    crm::core::icu_version(tiny, sizeof tiny);
    BOOST_TEST(tiny[0] == '\0');
}

BOOST_AUTO_TEST_SUITE_END()

#include <boost/test/unit_test.hpp>

#include <cstring>
#include <string>

#include "core/message.hpp"

using crm::core::copy_message;

BOOST_AUTO_TEST_SUITE(message)

BOOST_AUTO_TEST_CASE(short_text_is_copied_whole) {
    char buf[16];
    copy_message("hello", buf, sizeof buf);
    BOOST_TEST(std::string(buf) == "hello");
}

BOOST_AUTO_TEST_CASE(null_source_gives_empty_text) {
    char buf[4] = "abc";
    copy_message(nullptr, buf, sizeof buf);
    BOOST_TEST(std::string(buf).empty());
}

BOOST_AUTO_TEST_CASE(long_text_is_truncated_with_ellipsis) {
    char buf[10];
    copy_message("abcdefghijklmnop", buf, sizeof buf);
    BOOST_TEST(std::string(buf) == "abcdef...");
    BOOST_TEST(std::strlen(buf) == sizeof buf - 1);
}

BOOST_AUTO_TEST_CASE(truncation_never_splits_a_utf8_character) {
    // "ééééé" is 10 bytes; a 9-byte buffer keeps 5 bytes before "...",
    // which would cut the third é in half: it must back up to 4 bytes.
    char buf[9];
    copy_message("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", buf, sizeof buf);
    BOOST_TEST(std::string(buf) == "\xC3\xA9\xC3\xA9...");
}

BOOST_AUTO_TEST_CASE(tiny_buffers_stay_terminated) {
    char one[1];
    copy_message("abc", one, sizeof one);
    BOOST_TEST(one[0] == '\0');
    char three[3];
    copy_message("abcdef", three, sizeof three);
    BOOST_TEST(std::strlen(three) <= 2);
}

BOOST_AUTO_TEST_SUITE_END()

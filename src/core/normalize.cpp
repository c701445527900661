// Versions of the libraries that the matching keys depend on.
#include "core/normalize.hpp"

#include <unicode/uchar.h>
#include <unicode/uversion.h>

#include <cstring>

namespace crm::core {
namespace {

void write_version(const UVersionInfo version, char* buf, std::size_t cap) noexcept {
    if (buf == nullptr || cap == 0) return;
    char text[U_MAX_VERSION_STRING_LENGTH];
    u_versionToString(version, text);
    std::strncpy(buf, text, cap - 1);
    buf[cap - 1] = '\0';
}

}  // namespace

void icu_version(char* buf, std::size_t cap) noexcept {
    UVersionInfo version;
    u_getVersion(version);
    write_version(version, buf, cap);
}

void unicode_version(char* buf, std::size_t cap) noexcept {
    UVersionInfo version;
    u_getUnicodeVersion(version);
    write_version(version, buf, cap);
}

}  // namespace crm::core

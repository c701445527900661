#include "core/message.hpp"

#include <cstring>

namespace crm::core {

void copy_message(const char* src, char* dst, std::size_t cap) noexcept {
    if (dst == nullptr || cap == 0) return;
    if (src == nullptr) {
        dst[0] = '\0';
        return;
    }
    std::size_t len = std::strlen(src);
    if (len < cap) {
        std::memcpy(dst, src, len + 1);
        return;
    }
    // Too long: keep room for "..." and back up to a UTF-8 lead byte so we
    // never cut a multi-byte character in half (PostgreSQL would reject the
    // message as invalid encoding).
    static constexpr char kEllipsis[] = "...";
    std::size_t keep = cap > sizeof kEllipsis ? cap - sizeof kEllipsis : 0;
    while (keep > 0 && (static_cast<unsigned char>(src[keep]) & 0xC0) == 0x80) --keep;
    std::memcpy(dst, src, keep);
    std::size_t tail = cap - 1 - keep < sizeof kEllipsis - 1 ? cap - 1 - keep : sizeof kEllipsis - 1;
    std::memcpy(dst + keep, kEllipsis, tail);
    dst[keep + tail] = '\0';
}

}  // namespace crm::core

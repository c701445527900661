// TEMPORARY: a weak stand-in for crm::pg::normalize_key so the customers
// triggers link and can be tested before the "norm" feature (src/pg/
// normalize.cpp, a strong definition that replaces this one at link time)
// lands on main. It follows the plpgsql "before" rules (ASCII only):
// email lower(trim()), phone digits only, name lower(trim()) with inner
// whitespace collapsed. Delete this file once normalize.cpp is merged.
#include "pg/normalize.hpp"

#include <cctype>
#include <cstring>

namespace crm::pg {

__attribute__((weak)) NormalizeResult normalize_key(KeyType type, const char* raw, std::size_t len, char** out,
                                                    char* errbuf, std::size_t errcap) noexcept {
    *out = nullptr;
    if (errcap > 0) errbuf[0] = '\0';
    char* buf = static_cast<char*>(palloc(len + 1));
    std::size_t n = 0;
    if (type == KeyType::Phone) {
        for (std::size_t i = 0; i < len; i++) {
            if (raw[i] >= '0' && raw[i] <= '9') buf[n++] = raw[i];
        }
    } else {
        bool pending_space = false;
        for (std::size_t i = 0; i < len; i++) {
            unsigned char c = static_cast<unsigned char>(raw[i]);
            if (std::isspace(c)) {
                pending_space = n > 0;
                continue;
            }
            if (pending_space && type == KeyType::Name) buf[n++] = ' ';
            else if (pending_space) {
                // email: inner whitespace is kept as it was (trim only)
                std::size_t j = i;
                while (j > 0 && std::isspace(static_cast<unsigned char>(raw[j - 1]))) j--;
                for (; j < i; j++) buf[n++] = raw[j];
            }
            pending_space = false;
            buf[n++] = static_cast<char>(std::tolower(c));
        }
    }
    buf[n] = '\0';
    if (n == 0) {
        pfree(buf);
        return NormalizeResult::Empty;
    }
    *out = buf;
    return NormalizeResult::Normalized;
}

}  // namespace crm::pg

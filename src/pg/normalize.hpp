// Matching-key normalization for trigger code (src/pg), over src/core.
#pragma once

extern "C" {
#include "postgres.h"
}

#include <cstddef>

namespace crm::pg {

enum class KeyType { Email, Phone, Name };

enum class NormalizeResult {
    Normalized,  // *out is the normalized key, palloc'd in CurrentMemoryContext
    Empty,       // the input normalizes to nothing (*out = nullptr)
    Failed,      // could not normalize; errbuf holds the reason (*out = nullptr)
};

// Normalizes one matching key the way the SQL functions crm_native.normalize_*
// do, with the current GUC settings (crm_native.default_region, ...).
// C-style and safe to call from trigger code with no C++ objects live: it never
// throws, and it ereports only for a database-level failure (out of memory).
NormalizeResult normalize_key(KeyType type, const char* raw, std::size_t len, char** out,
                              char* errbuf, std::size_t errcap) noexcept;

}  // namespace crm::pg

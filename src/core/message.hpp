// Error text that crosses the C++/PostgreSQL boundary.
#pragma once
#include "core/core_only.hpp"

#include <cstddef>

namespace crm::core {

// Capacity of the fixed buffers the boundary copies error text into. Copying
// into a fixed stack buffer allocates nothing, so it is safe inside a catch
// block (a palloc there could longjmp out of the handler).
constexpr std::size_t kMessageCapacity = 1024;

// Copies the NUL-terminated src into dst (capacity cap, cap >= 1), truncating
// at a UTF-8 character boundary and marking truncation with "...".
// Never allocates, never throws. A null src yields "".
void copy_message(const char* src, char* dst, std::size_t cap) noexcept;

}  // namespace crm::core

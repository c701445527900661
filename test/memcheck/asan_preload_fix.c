// Preloaded after libasan into the memcheck server (scripts/memcheck.sh): two
// work-arounds for running the sanitizer runtimes of gcc 12 (libasan.so.8,
// libubsan.so.1) inside Debian's uninstrumented postgres (glibc 2.36).
//
// 1. swift_demangle: without it postgres (and psql, pg_ctl) hang at start-up
// under LD_PRELOAD=libasan.so. postgres links libgpg-error (through
// libsystemd -> libgcrypt) and p11-kit (through libldap -> gnutls), whose
// constructors run before libasan's own and call glibc functions
// (bindtextdomain(), newlocale()) that malloc while holding an internal lock
// for writing (_nl_state_lock, __libc_setlocale_lock). That first malloc
// initializes ASan, and ASan's initialization looks up the optional symbol
// swift_demangle with dlsym() and then calls dlerror(), which translates its
// "undefined symbol" message with dcgettext(): that read-locks and unlocks the
// same locks, leaving them corrupt, and the next bindtextdomain() (postgres's
// own) waits forever. Defining swift_demangle makes the dlsym() succeed, so
// dlerror() has nothing to translate. ASan then offers each symbol name to it
// before its C++ demangler; NULL means "not a Swift name", so reports read
// the same as without it.
//
// 2. __ubsan_default_options: libubsan initializes lazily, at its first
// report, in a backend, and reads UBSAN_OPTIONS from /proc/self/environ, the
// memory PostgreSQL has overwritten with the process title by then: it would
// run with its defaults (report to stderr, go on). libubsan takes its
// defaults from this hook first; getenv() reads the copy of the environment
// PostgreSQL keeps, so UBSAN_OPTIONS applies after all. (ASan initializes in
// the postmaster, before the title is written, and reads ASAN_OPTIONS itself.)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

char* swift_demangle(const char* mangled, size_t length, char* out, size_t* out_size, uint32_t flags);
const char* __ubsan_default_options(void);

char* swift_demangle(const char* mangled, size_t length, char* out, size_t* out_size, uint32_t flags) {
    (void)mangled;
    (void)length;
    (void)out;
    (void)out_size;
    (void)flags;
    return NULL;
}

const char* __ubsan_default_options(void) {
    const char* options = getenv("UBSAN_OPTIONS");
    return options ? options : "";
}

// crm_native._guard_test(kind): test-only entry point that proves the guards.
// Each kind fails in a different way inside live C++ code; the backend must
// survive and the client must see the error text.
//
// Not shipped: the Makefile links this file only with CRM_TEST_FUNCTIONS=1
// (the test command's build), and the extension script does not declare the
// function; sql/guard.sql creates it. The #ifdef keeps the symbol out of any
// other build that happens to compile every src/pg/*.cpp.
#ifdef CRM_TEST_FUNCTIONS
#include "pg/guard.hpp"

extern "C" {
#include "utils/builtins.h"
}

#include <exception>
#include <memory>
#include <new>
#include <string>

namespace {

// Destructors that ran while an error unwound the stack (visible via
// _guard_test('destructor_count')): proves pg_call let C++ unwind normally.
int unwound_destructors = 0;

struct UnwindProbe {
    ~UnwindProbe() {
        if (std::uncaught_exceptions() > 0) ++unwound_destructors;
    }
};

Datum guard_test(const std::string& kind) {
    UnwindProbe probe;
    std::string scratch = "live C++ object during the " + kind + " test";
    if (kind == "ok") {
        std::string reply = "ok";
        return crm::pg::pg_call([&] { return PointerGetDatum(cstring_to_text(reply.c_str())); });
    }
    if (kind == "cpp_exception") throw std::runtime_error("guard test: C++ exception thrown inside crm_native");
    if (kind == "invalid_argument") throw std::invalid_argument("guard test: invalid argument");
    if (kind == "bad_alloc") {
#if defined(__SANITIZE_ADDRESS__)
        // ASan's operator new never throws: a failed allocation is a fatal
        // report (allocation-size-too-big, or out of memory with
        // allocator_may_return_null=1). Under scripts/memcheck.sh, throw what
        // the C++ runtime would.
        throw std::bad_alloc();
#endif
        volatile std::size_t huge = static_cast<std::size_t>(1) << 62;
        std::unique_ptr<char[]> block(new char[huge]);
        block[0] = 'x';
        return PointerGetDatum(cstring_to_text("allocation unexpectedly succeeded"));
    }
    if (kind == "pg_error") {
        // A real backend error (22P02) raised while C++ objects are live.
        const char* input = "not a number";
        crm::pg::pg_call([&] { return DirectFunctionCall1(int4in, CStringGetDatum(input)); });
        return PointerGetDatum(cstring_to_text("int4in unexpectedly succeeded"));
    }
    if (kind == "destructor_count") {
        int count = unwound_destructors;
        return crm::pg::pg_call([&] { return PointerGetDatum(cstring_to_text(std::to_string(count).c_str())); });
    }
    if (kind.rfind("memcheck_", 0) == 0) {
#if defined(__SANITIZE_ADDRESS__)
        // Real memory errors for scripts/memcheck.sh's self-test, which
        // requires the sanitizers to report each one (and the backend to
        // die). No regression suite calls them; without the sanitizers they
        // are refused below instead of running undefined behaviour.
        if (kind == "memcheck_use_after_free") {
            char* block = new char[16]();
            char* volatile dangling = block;
            delete[] block;
            char c = dangling[3];  // heap-use-after-free (ASan)
            return PointerGetDatum(cstring_to_text(("read freed memory: " + std::to_string(c)).c_str()));
        }
        if (kind == "memcheck_out_of_bounds") {
            std::unique_ptr<char[]> block(new char[16]());
            volatile std::size_t index = 16;
            char c = block[index];  // heap-buffer-overflow, one past the end (ASan)
            return PointerGetDatum(cstring_to_text(("read past the end: " + std::to_string(c)).c_str()));
        }
        if (kind == "memcheck_shift") {
            volatile int exponent = 40;
            int value = 1 << exponent;  // shift exponent too large (UBSan)
            return PointerGetDatum(cstring_to_text(("shifted: " + std::to_string(value)).c_str()));
        }
#endif
        throw crm::pg::SqlError(ERRCODE_FEATURE_NOT_SUPPORTED,
                                "guard test: memcheck_* kinds need a sanitized build (scripts/memcheck.sh)");
    }
    throw crm::pg::SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                            ("unknown guard test kind \"" + kind + "\"").c_str());
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(crm_guard_test);
Datum crm_guard_test(PG_FUNCTION_ARGS) {
    text* kind_text = PG_GETARG_TEXT_PP(0);
    const char* kind_data = VARDATA_ANY(kind_text);
    size_t kind_len = VARSIZE_ANY_EXHDR(kind_text);
    return crm::pg::run_guarded([&]() -> Datum { return guard_test(std::string(kind_data, kind_len)); });
}
}
#endif  // CRM_TEST_FUNCTIONS

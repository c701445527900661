// The two guards at the C++/PostgreSQL boundary (docs/contract.md; README "The C++ boundary").
//
// PostgreSQL reports errors with ereport(), which longjmps: it skips C++
// destructors and cannot pass through a C++ frame safely. C++ reports errors
// with exceptions, which must never reach a C frame (an exception escaping an
// extern "C" function calls std::terminate and takes the whole server down).
//
//  * run_guarded(body): every SQL-callable function runs its C++ work through
//    it. Any exception is caught; its text is copied into a fixed buffer (no
//    allocation inside the handler); and only after the try block has ended,
//    when no C++ object of body is alive, is the error raised with ereport.
//
//  * pg_call(fn): a backend call made from C++ code that may ereport runs
//    through it. The PostgreSQL error is caught with PG_TRY, copied, and
//    rethrown as a PgError exception, so C++ destructors run normally;
//    run_guarded later re-raises the original error (same SQLSTATE, message,
//    detail) with ReThrowError. fn itself must hold no C++ objects with
//    destructors: it is the C part of the call.
//
// Every extern "C" entry point of the module (triggers and SQL functions)
// runs its body through run_guarded, so an exception from anywhere below it
// becomes an ERROR, never std::terminate(). Inside, plain C-style code with
// no C++ object alive (the trigger files, calling src/core through a
// noexcept bridge) calls the backend directly: an ereport there longjmps out
// through run_guarded's frame, which holds no object with a destructor.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <exception>
#include <new>
#include <stdexcept>
#include <type_traits>

#include "core/message.hpp"

namespace crm::pg {

// A PostgreSQL error carried through C++ frames as an exception.
class PgError final : public std::exception {
public:
    explicit PgError(ErrorData* edata) noexcept : edata_(edata) {}
    const char* what() const noexcept override {
        return edata_ != nullptr && edata_->message != nullptr ? edata_->message : "PostgreSQL error";
    }
    ErrorData* edata() const noexcept { return edata_; }

private:
    ErrorData* edata_;  // CopyErrorData() result, in the caller's memory context
};

// An error the boundary code wants raised with a specific SQLSTATE.
class SqlError final : public std::runtime_error {
public:
    SqlError(int sqlstate, const char* message) : std::runtime_error(message), sqlstate_(sqlstate) {}
    int sqlstate() const noexcept { return sqlstate_; }

private:
    int sqlstate_;
};

namespace detail {
// Raises the error captured by run_guarded. Defined in guard.cpp; never returns.
[[noreturn]] void raise_captured(ErrorData* pg_error, int sqlstate, const char* message);
}  // namespace detail

template <typename F>
Datum run_guarded(F&& body) noexcept {
    ErrorData* pg_error = nullptr;
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    char message[crm::core::kMessageCapacity];
    message[0] = '\0';
    try {
        return body();
    } catch (const PgError& e) {
        pg_error = e.edata();
    } catch (const SqlError& e) {
        sqlstate = e.sqlstate();
        crm::core::copy_message(e.what(), message, sizeof message);
    } catch (const std::bad_alloc&) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
        crm::core::copy_message("out of memory: a C++ allocation in crm_native failed", message, sizeof message);
    } catch (const std::invalid_argument& e) {
        sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
        crm::core::copy_message(e.what(), message, sizeof message);
    } catch (const std::exception& e) {
        crm::core::copy_message(e.what(), message, sizeof message);
    } catch (...) {
        crm::core::copy_message("crm_native: unknown C++ exception", message, sizeof message);
    }
    // The try block is over: every C++ object body() created is destroyed.
    detail::raise_captured(pg_error, sqlstate, message);
}

template <typename F>
auto pg_call(F&& fn) -> decltype(fn()) {
    using Result = decltype(fn());
    static_assert(std::is_void_v<Result> || std::is_scalar_v<Result>,
                  "pg_call returns scalars (Datum, pointers, integers) only");
    MemoryContext caller_cxt = CurrentMemoryContext;
    ErrorData* volatile caught = nullptr;
    // A C++ exception thrown by fn must not unwind through PG_TRY (it would
    // leave PG_exception_stack pointing into a dead frame): catch it inside
    // and rethrow it once PG_END_TRY has restored the stack.
    std::exception_ptr cpp_error;
    std::conditional_t<std::is_void_v<Result>, int, Result> volatile result{};
    PG_TRY();
    {
        try {
            if constexpr (std::is_void_v<Result>) {
                fn();
            } else {
                result = fn();
            }
        } catch (...) {
            cpp_error = std::current_exception();
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_cxt);
        caught = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    if (caught != nullptr) throw PgError(caught);
    if (cpp_error) std::rethrow_exception(cpp_error);
    if constexpr (!std::is_void_v<Result>) return result;
}

}  // namespace crm::pg

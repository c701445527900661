// The statement catalogue of the data-access layer (store.hpp): what each
// statement is, for store.cpp's plan cache. Not for trigger files.
#pragma once

#include "pg/store.hpp"

namespace crm::pg::store {

// In a statement's argument types: the row type of the table the trigger
// fires on (the audit row's old and new images).
constexpr Oid kSelfRowType = static_cast<Oid>(-2);

constexpr int kMaxStatementArgs = 10;

// Auto: the plan cache's choice (custom plans first, then the generic plan
// when it is no dearer). Generic (CURSOR_OPT_GENERIC_PLAN): planned once; for
// per-row statements whose every table access is a primary-key probe, and for
// statements over transition tables only. Custom (CURSOR_OPT_CUSTOM_PLAN):
// planned at each execution, with the arrays' real lengths and the tables'
// current sizes; for the once-per-statement metrics statements that probe
// tables by an array of customers. A generic plan assumes 10 elements per
// array and is often made on empty tables; under row-level security it then
// prefers the policy's company_id index (every metrics row of the tenant) to
// ten primary-key probes, and keeps that choice.
enum class PlanMode : unsigned char { Auto, Generic, Custom };

struct StatementSpec {
    Statement id;
    const char* name;  // for error messages
    // The text, with {table} placeholders: {self} is the table the trigger
    // fires on; {customers}, {customer_matching_keys}, {customer_events},
    // {customer_audit_log}, {customer_metrics} the table of that name in the
    // same schema. Each becomes a quoted, schema-qualified name.
    const char* text;
    int nargs;
    Oid argtypes[kMaxStatementArgs];
    int expected;  // the SPI result code every execution must return
    // How the plan cache plans the statement (PlanMode).
    PlanMode plan_mode;
    // Reads the transition tables (crm_metrics_new / crm_metrics_old), whose
    // columns the plan cache does not track: replan when the row type changes.
    bool reads_transition_tables;
};

// The spec of `statement`; its text is built on first use and kept.
const StatementSpec* statement_spec(Statement statement);

}  // namespace crm::pg::store

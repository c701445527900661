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
// statements whose parameters are arrays or transition tables, where a custom
// plan costs a planning per execution (0.66 ms for the metrics' existing-rows
// statement, on every single-chat UPDATE) and rarely helps.
enum class PlanMode : unsigned char { Auto, Generic };

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

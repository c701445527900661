// Dropping the foreign-key checks that a customer's own rows imply; the
// reasoning is in implied_references.hpp.
#include "pg/implied_references.hpp"
#include "pg/module.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "access/table.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "executor/executor.h"
#include "nodes/pg_list.h"
#include "utils/fmgroids.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
}
#pragma GCC diagnostic pop

namespace crm::pg::implied_references {

namespace {

ExecutorStart_hook_type prev_executor_start = nullptr;

bool skip_implied_checks = true;  // crm_native.skip_implied_fk_checks

// Set by run_insert() for the one ExecutorStart its SPI call makes.
bool armed = false;
Oid armed_target = InvalidOid;
Oid armed_customers = InvalidOid;

bool uuid_equality(Oid op) { return get_opcode(op) == F_UUID_EQ; }

// An action that never leaves a referencing customer behind without its
// company: the delete (or key update) fails, or takes the customer along.
bool keeps_company(char action) {
    return action == FKCONSTR_ACTION_NOACTION || action == FKCONSTR_ACTION_RESTRICT ||
           action == FKCONSTR_ACTION_CASCADE;
}

// Whether customers.company_id is a validated foreign key to (confrelid,
// confkey) that keeps the company while the customer exists.
bool customer_keeps_company(Relation customers, Oid confrelid, AttrNumber confkey) {
    AttrNumber company = get_attnum(RelationGetRelid(customers), "company_id");
    if (company == InvalidAttrNumber) return false;
    ListCell* lc;
    foreach (lc, RelationGetFKeyList(customers)) {
        const ForeignKeyCacheInfo* fk = static_cast<const ForeignKeyCacheInfo*>(lfirst(lc));
        if (fk->nkeys != 1 || fk->conkey[0] != company || fk->confrelid != confrelid || fk->confkey[0] != confkey ||
            !uuid_equality(fk->conpfeqop[0]))
            continue;
        HeapTuple tuple = SearchSysCache1(CONSTROID, ObjectIdGetDatum(fk->conoid));
        if (!HeapTupleIsValid(tuple)) continue;
        const Form_pg_constraint con = reinterpret_cast<Form_pg_constraint>(GETSTRUCT(tuple));
        bool keeps = con->convalidated && keeps_company(con->confdeltype) && keeps_company(con->confupdtype);
        ReleaseSysCache(tuple);
        if (keeps) return true;
    }
    return false;
}

// Whether the target's foreign key `fk` is implied by the customer row that
// each inserted row names (customer_id, company_id): see the header.
bool implied(const ForeignKeyCacheInfo* fk, Relation target, Relation customers) {
    if (fk->nkeys != 1 || !uuid_equality(fk->conpfeqop[0])) return false;
    Oid target_relid = RelationGetRelid(target);
    if (fk->conkey[0] == get_attnum(target_relid, "customer_id"))
        return fk->confrelid == RelationGetRelid(customers) &&
               fk->confkey[0] == get_attnum(RelationGetRelid(customers), "id");
    if (fk->conkey[0] == get_attnum(target_relid, "company_id"))
        return customer_keeps_company(customers, fk->confrelid, fk->confkey[0]);
    return false;
}

const ForeignKeyCacheInfo* foreign_key(List* fks, Oid conoid) {
    ListCell* lc;
    foreach (lc, fks) {
        const ForeignKeyCacheInfo* fk = static_cast<const ForeignKeyCacheInfo*>(lfirst(lc));
        if (fk->conoid == conoid) return fk;
    }
    return nullptr;
}

// Removes the implied RI check triggers from this statement's copy of the
// target's trigger list (InitResultRelInfo copied it; nothing has fired yet,
// so the per-trigger caches indexed by position are still empty).
void drop_implied_checks(ResultRelInfo* result, Oid customers_relid) {
    TriggerDesc* triggers = result->ri_TrigDesc;
    if (triggers == nullptr) return;
    // A user trigger could change a row, or delete its customer, inside the
    // INSERT, after the caller's guard has seen it; a rule could rewrite it.
    for (int i = 0; i < triggers->numtriggers; i++)
        if (!triggers->triggers[i].tgisinternal) return;
    Relation target = result->ri_RelationDesc;
    if (target->rd_rules != nullptr) return;
    Relation customers = table_open(customers_relid, NoLock);  // the statement reads it: locked
    List* fks = RelationGetFKeyList(target);
    int kept = 0;
    bool after_insert_row = false;
    for (int i = 0; i < triggers->numtriggers; i++) {
        Trigger* trigger = &triggers->triggers[i];
        if (trigger->tgfoid == F_RI_FKEY_CHECK_INS) {
            const ForeignKeyCacheInfo* fk = foreign_key(fks, trigger->tgconstraint);
            if (fk != nullptr && implied(fk, target, customers)) continue;
        }
        if (TRIGGER_TYPE_MATCHES(trigger->tgtype, TRIGGER_TYPE_ROW, TRIGGER_TYPE_AFTER, TRIGGER_TYPE_INSERT))
            after_insert_row = true;
        if (kept != i) triggers->triggers[kept] = *trigger;
        kept++;
    }
    elog(DEBUG2, "crm_native: %d implied foreign-key check(s) dropped from an INSERT into \"%s\"",
         triggers->numtriggers - kept, RelationGetRelationName(target));
    triggers->numtriggers = kept;
    triggers->trig_insert_after_row = after_insert_row;
    table_close(customers, NoLock);
}

void executor_start(QueryDesc* query, int eflags) {
    bool mine = armed;
    Oid target = armed_target;
    Oid customers = armed_customers;
    armed = false;  // only the first statement the SPI call starts
    if (prev_executor_start != nullptr)
        prev_executor_start(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
    if (!mine || (eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0) return;
    // Both tables must be the statement's own (so both are locked by it).
    List* relations = query->plannedstmt->relationOids;
    if (!list_member_oid(relations, target) || !list_member_oid(relations, customers)) return;
    ListCell* lc;
    foreach (lc, query->estate->es_opened_result_relations) {
        ResultRelInfo* result = static_cast<ResultRelInfo*>(lfirst(lc));
        if (RelationGetRelid(result->ri_RelationDesc) == target) drop_implied_checks(result, customers);
    }
}

}  // namespace

uint64 run_insert(SPIPlanPtr plan, Datum* values, const char* nulls, Oid target, Oid customers, int expected_rc,
                  const char* who) {
    volatile int rc = 0;
    armed = skip_implied_checks && OidIsValid(target) && OidIsValid(customers);
    armed_target = target;
    armed_customers = customers;
    PG_TRY();
    {
        rc = SPI_execute_plan(plan, values, nulls, false, 0);
    }
    PG_FINALLY();
    {
        armed = false;
    }
    PG_END_TRY();
    if (rc != expected_rc) elog(ERROR, "%s: SPI_execute_plan returned %s", who, SPI_result_code_string(rc));
    return SPI_processed;
}

void insert_customer_rows(const customers::CustomerRel* entry, const char* target, SPIPlanPtr* guarded,
                          SPIPlanPtr* checked, const char* query_template, int nargs, Oid* types, Datum* values,
                          const char* nulls, uint64 rows, const char* what, const char* who) {
    SPIPlanPtr plan = customers::keep_plan(guarded, query_template, entry->quoted_schema, nargs, types, "");
    Oid target_relid = get_relname_relid(target, entry->namespace_oid);
    uint64 written = run_insert(plan, values, nulls, target_relid, entry->relid, SPI_OK_INSERT, who);
    if (written < rows) {
        plan = customers::keep_plan(checked, query_template, entry->quoted_schema, nargs, types, "NOT ");
        written += customers::run_plan(plan, values, nulls, SPI_OK_INSERT, who);
    }
    if (written != rows)
        elog(ERROR, "%s: wrote %llu of %llu %s", who, static_cast<unsigned long long>(written),
             static_cast<unsigned long long>(rows), what);
}

void initialize() {
    DefineCustomBoolVariable(
        "crm_native.skip_implied_fk_checks",
        "Skips the foreign-key checks of a customer's matching keys and 'created' event that the customer row implies.",
        "The rows and the errors are the same as with off: the checks dropped are those that cannot fail "
        "(docs/customer_sync.md, \"Implied foreign-key checks\").",
        &skip_implied_checks, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    prev_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = executor_start;
}

}  // namespace crm::pg::implied_references

namespace crm::pg {
void initialize_implied_references() { implied_references::initialize(); }
}  // namespace crm::pg

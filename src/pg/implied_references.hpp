// Foreign-key checks that a new customer's own rows do not need.
//
// Every row the native triggers write for a customer (a matching key, a
// 'created' event, its first metrics row) names it in customer_id and its
// company in company_id, and those columns are foreign keys (the metrics
// row's company_id is not, in the reference schema). PostgreSQL checks each
// with a query per row (SELECT ... FOR KEY SHARE, through SPI): for a new
// customer's three keys, its event and its metrics row that is nine queries,
// the largest single cost of a chat from a new customer after the index
// inserts (docs/benchmark.md).
//
// Both checks are implied when the customer row that the row names is one
// this transaction wrote (inserted or updated) and still sees live:
//   * customer_id -> customers(id): the customer exists, and no other
//     transaction can delete it before this one ends (it cannot see an
//     inserted row, and waits on an updated one); a later delete by this
//     transaction meets the foreign key's ON DELETE action as usual.
//   * company_id -> companies(id): the customer's own company_id is a
//     validated foreign key to the same column, with the same equality, whose
//     ON DELETE / ON UPDATE action is NO ACTION, RESTRICT or CASCADE: the
//     company cannot go while the customer stays. The row's company_id equals
//     the customer's.
// So run_insert() drops those two checks (and only those) from the one
// INSERT it runs, provided the target table has no triggers but PostgreSQL's
// internal ones and no rules (no user code can run inside the INSERT and
// change a row or delete its customer). Everything else runs unchanged: defaults, CHECK and
// NOT NULL constraints, index inserts, row-level security, other foreign keys.
//
// The caller guarantees "wrote and still sees live" for every row it inserts:
// in the INSERT itself, by a guard `EXISTS (SELECT FROM customers c WHERE
// c.id = row.customer_id AND c.company_id = row.company_id)` (rows it
// filters out are written by the caller's unguarded statement, with every
// check), or by taking customer_id and company_id from the RETURNING of the
// customer INSERT in the same statement.
#pragma once

#include "pg/customer_triggers.hpp"

namespace crm::pg::implied_references {

// SPI_execute_plan(plan, values, nulls) with the implied checks of `target`
// dropped (see above); `customers` is the customers table the rows name.
// Returns SPI_processed; errors when the result code is not SPI_OK_INSERT
// (or SPI_OK_SELECT for a data-modifying WITH). Between SPI_connect and
// SPI_finish.
uint64 run_insert(SPIPlanPtr plan, Datum* values, const char* nulls, Oid target, Oid customers, int expected_rc,
                  const char* who);

// Inserts `rows` rows into the table `target` (in the customers table's
// schema) that each name a customer this transaction wrote, and errors
// unless all of them were written. `query_template` is the INSERT with its
// guard: %1$s stands for the quoted schema and %2$s directly precedes the
// guard's EXISTS. The guarded statement (plan kept in *guarded) runs through
// run_insert(); when it wrote fewer rows, the same text with NOT EXISTS
// (plan kept in *checked) writes the rest with every check, and a missing
// customer fails as its foreign key says. Between SPI_connect and SPI_finish.
// The guard of such an INSERT ... SELECT, for source rows whose customer_id
// and company_id are the SQL expressions `row_customer` and `row_company`.
#define CRM_CUSTOMER_ROW_GUARD(row_customer, row_company)                                         \
    " WHERE %2$sEXISTS (SELECT FROM %1$s.customers c WHERE c.id OPERATOR(pg_catalog.=) " row_customer \
    " AND c.company_id OPERATOR(pg_catalog.=) " row_company ")"

void insert_customer_rows(const customers::CustomerRel* entry, const char* target, SPIPlanPtr* guarded,
                          SPIPlanPtr* checked, const char* query_template, int nargs, Oid* types, Datum* values,
                          const char* nulls, uint64 rows, const char* what, const char* who);

// Start-up: the ExecutorStart hook (module.hpp).
void initialize();

}  // namespace crm::pg::implied_references

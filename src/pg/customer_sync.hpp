// What the chat sync (customer_sync.cpp) tells the other native triggers.
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/uuid.h"
}

namespace crm::pg::sync {

// Whether `customer` is the customer the sync created last, in the current
// transaction. A hint for the metrics trigger (a new customer has no metrics
// row yet): a wrong answer costs a statement, never a wrong row.
bool created_in_this_transaction(const pg_uuid_t* customer);

}  // namespace crm::pg::sync

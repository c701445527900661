// Start-up hooks that each feature file provides; _PG_init (module.cpp)
// calls them in order. Add one line per feature.
#pragma once

namespace crm::pg {

// Normalization (src/pg/normalize.cpp): crm_native.default_region and
// crm_native.email_provider_rules.
void define_normalization_gucs();
// Customer sync (src/pg/customer_sync.cpp): crm_native.sync_key_lock_limit.
void define_customer_sync_gucs();
// Batched writes of new customers' keys and audit rows
// (src/pg/pending_writes.cpp): crm_native.sync_batch_writes, executor hooks.
void initialize_batched_customer_writes();
// Foreign-key checks implied by a customer's own rows
// (src/pg/implied_references.cpp): the ExecutorStart hook.
void initialize_implied_references();

}  // namespace crm::pg

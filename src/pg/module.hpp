// Start-up hooks that each feature file provides; _PG_init (module.cpp)
// calls them in order. Add one line per feature.
#pragma once

namespace crm::pg {

// Customer sync (src/pg/customer_sync.cpp): crm_native.sync_key_lock_limit.
void define_customer_sync_gucs();

}  // namespace crm::pg

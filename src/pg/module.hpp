// Start-up hooks that each feature file provides; _PG_init (module.cpp)
// calls them in order. Add one line per feature.
#pragma once

namespace crm::pg {

// Normalization (src/pg/normalize.cpp): crm_native.default_region and
// crm_native.email_provider_rules.
void define_normalization_gucs();
// Customer sync (src/pg/customer_sync.cpp): crm_native.sync_key_lock_limit.
void define_customer_sync_gucs();
// Metrics (src/pg/metrics.cpp): crm_native.attach_partition_triggers.
void define_metrics_gucs();

// glibc's malloc thresholds for this backend (module.cpp says why); once,
// and never in the postmaster. _PG_init and every native trigger call it.
void tune_malloc_once();

}  // namespace crm::pg

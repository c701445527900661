// The loadable module: magic block and start-up.
#include "pg/guard.hpp"
#include "pg/module.hpp"
#include "pg/trigger_stats.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
}

void _PG_init(void) {
    // Each feature defines its own GUCs; see module.hpp.
    // (each feature adds its call here)
    crm::pg::define_normalization_gucs();
    crm::pg::define_customer_sync_gucs();
    crm::pg::trigger_stats::define();
}

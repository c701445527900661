// The loadable module: magic block and start-up.
#include "pg/guard.hpp"
#include "pg/index_pins.hpp"
#include "pg/module.hpp"
#include "pg/trigger_stats.hpp"

#include "miscadmin.h"

#include <malloc.h>

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace {

// glibc gives the free memory at the top of the heap back to the kernel once
// more than M_TRIM_THRESHOLD (128 kB until it adapts) is free there, and the
// next allocation takes it back: a brk() shrink, page faults, and on a
// virtual machine a TLB shootdown on every core. The executor memory of a new
// customer's INSERT statement is about that size, so a bulk import of new
// customers paid that cycle once per chat: 60% of its time on a busy 2-core
// VM (perf: brk -> flush_tlb_mm_range), 3x slower than plpgsql, whose
// statements happen to stay under the threshold. Whether it happens depends
// on the heap's layout, i.e. on luck; so a backend that loads crm_native keeps
// up to kTrimThreshold free at the top of its heap, and serves allocations up
// to kMmapThreshold from the heap (setting one threshold turns off glibc's
// adaptive ones, so both are set). The price: a backend may hold up to 8 MB
// of free memory it would otherwise have returned.
constexpr int kMmapThreshold = 4 * 1024 * 1024;
constexpr int kTrimThreshold = 8 * 1024 * 1024;

bool malloc_tuned = false;

}  // namespace

// Not in the postmaster (shared_preload_libraries): every backend it forks
// would inherit the thresholds, those of databases that never use crm_native
// too (found by an independent review); a backend tunes its own malloc when
// it loads the library, or at its first native trigger call.
void crm::pg::tune_malloc_once() {
    if (malloc_tuned || !IsUnderPostmaster) return;
    (void)mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
    (void)mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
    malloc_tuned = true;
}

void _PG_init(void) {
    crm::pg::tune_malloc_once();
    // Each feature defines its own GUCs; see module.hpp.
    // (each feature adds its call here)
    crm::pg::define_normalization_gucs();
    crm::pg::define_customer_sync_gucs();
    crm::pg::define_metrics_gucs();
    crm::pg::trigger_stats::define();
    crm::pg::index_pins::install();
}

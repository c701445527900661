// Start-up hooks that each feature file provides; _PG_init (module.cpp)
// calls them in order. Add one line per feature.
#pragma once

namespace crm::pg {

}  // namespace crm::pg

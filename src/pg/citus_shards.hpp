// Citus shards (docs/citus.md): where a trigger that fires on a shard finds
// the other CRM tables.
//
// On a Citus cluster the CRM tables are distributed by company_id and
// co-located; a chat INSERT through the coordinator runs on one worker, on a
// shard table such as "VC Usage_102008", and so do the triggers. A statement
// the trigger ran against the distributed table (public.customers) would go
// back through Citus' distributed planner from inside a shard, which Citus
// refuses ("cannot execute a distributed query from a query on a shard") or
// cannot route. So the data-access layer (store.cpp) names, for a trigger on
// a shard, the co-located shard of each table: the shard of the same
// distributed table group covering the same hash range, which Citus keeps on
// the same node.
//
// Without Citus nothing here runs past a string check of the table's name
// (a shard's name ends in "_<shard id>").
#pragma once

#include "pg/store.hpp"

namespace crm::pg::citus {

constexpr int kMaxTables = 8;

struct Placement {
    bool is_shard;                // rel is a shard of a distributed table
    Oid self_shell;               // is_shard: rel's distributed table
    Oid shell[kMaxTables];        // is_shard: the distributed table of each table name
    Oid shard[kMaxTables];        // is_shard: its co-located shard on this node
    NameData shard_name[kMaxTables];
};

// The placement of the trigger table rel, for the tables named `tables` (in
// rel's schema). Resolved from Citus' metadata (pg_dist_shard,
// pg_dist_partition) when first needed and again after any invalidation
// (`invalidations` is the caller's count of them); raises a clear error when
// a table is not distributed and co-located with rel's or its shard is not on
// this node. The result lives until the next call.
const Placement* placement_for(Relation rel, const char* const* tables, int ntables, uint64 invalidations);

// Removes the placements of the relations `gone` says no longer exist
// (store.cpp, "Forgetting dropped relations").
void forget_dropped_placements(bool (*gone)(Oid relid));

}  // namespace crm::pg::citus

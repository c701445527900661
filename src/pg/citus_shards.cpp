// Citus shards: see citus_shards.hpp.
#include "pg/citus_shards.hpp"
#include "pg/store.hpp"

#include <cstdlib>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "catalog/namespace.h"
#include "commands/extension.h"
}
#pragma GCC diagnostic pop

namespace crm::pg::citus {

namespace {

struct Entry {
    Oid relid;  // hash key: the trigger table
    uint64 checked_at;
    Placement placement;
};

HTAB* entries = nullptr;

// The shard id in a name "<table>_<digits>" (0: no such suffix) and the
// length of <table>.
uint64 shard_suffix(const char* name, int* base_len) {
    int len = static_cast<int>(std::strlen(name));
    int i = len;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9') i--;
    if (i == len || len - i > 19 || i < 2 || name[i - 1] != '_') return 0;
    *base_len = i - 1;
    return std::strtoull(name + i, nullptr, 10);
}

// For shard $1 of the distributed table $2 (in schema $3): each table named
// in $4 with its distributed table, its shard covering the same hash range,
// whether it is hash-distributed and co-located with $2, and whether $2 is
// hash-distributed. Shards are looked up by their range, as Citus places
// co-located shards: same group, same range, same node.
constexpr const char* kColocatedShards =
    "SELECT t.ord::pg_catalog.int4, sh.oid, s2.shardid,"
    "       p2.partmethod OPERATOR(pg_catalog.=) 'h', p2.colocationid OPERATOR(pg_catalog.=) p1.colocationid,"
    "       p1.partmethod OPERATOR(pg_catalog.=) 'h'"
    "  FROM pg_catalog.pg_dist_shard s1"
    "  JOIN pg_catalog.pg_dist_partition p1 ON p1.logicalrelid OPERATOR(pg_catalog.=) s1.logicalrelid"
    " CROSS JOIN pg_catalog.unnest($4::pg_catalog.text[]) WITH ORDINALITY AS t(name, ord)"
    "  LEFT JOIN pg_catalog.pg_class sh"
    "         ON sh.relname OPERATOR(pg_catalog.=) t.name AND sh.relnamespace OPERATOR(pg_catalog.=) $3"
    "  LEFT JOIN pg_catalog.pg_dist_partition p2"
    "         ON p2.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) sh.oid"
    "  LEFT JOIN pg_catalog.pg_dist_shard s2"
    "         ON s2.logicalrelid OPERATOR(pg_catalog.=) p2.logicalrelid"
    "        AND s2.shardminvalue OPERATOR(pg_catalog.=) s1.shardminvalue"
    "        AND s2.shardmaxvalue OPERATOR(pg_catalog.=) s1.shardmaxvalue"
    " WHERE s1.shardid OPERATOR(pg_catalog.=) $1"
    "   AND s1.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) $2";

[[noreturn]] void misplaced(Relation rel, const char* table, const char* problem) {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("crm_native: the trigger fires on Citus shard \"%s\", but table \"%s\" %s",
                           RelationGetRelationName(rel), table, problem),
                    errhint("On Citus every CRM table must be distributed by company_id and co-located with "
                            "\"VC Usage\", with metadata synced to the workers; crm_native.install() checks "
                            "this (docs/citus.md).")));
}

void resolve(Relation rel, const char* const* tables, int ntables, Placement* out) {
    std::memset(out, 0, sizeof *out);
    const char* relname = RelationGetRelationName(rel);
    int base_len = 0;
    uint64 shard_id = shard_suffix(relname, &base_len);
    if (shard_id == 0 || !OidIsValid(get_extension_oid("citus", true))) return;
    char base[NAMEDATALEN];
    std::memcpy(base, relname, base_len);
    base[base_len] = '\0';
    Oid nsp = RelationGetNamespace(rel);
    Oid shell = get_relname_relid(base, nsp);
    if (!OidIsValid(shell)) return;
    // The exact name Citus gives shard <id> of <base> (no leading zeros).
    char expected[NAMEDATALEN];
    snprintf(expected, sizeof expected, "%s_" UINT64_FORMAT, base, shard_id);
    if (std::strcmp(expected, relname) != 0) return;

    Datum names[kMaxTables];
    for (int t = 0; t < ntables; t++) names[t] = CStringGetTextDatum(tables[t]);
    Oid types[4] = {INT8OID, OIDOID, OIDOID, TEXTARRAYOID};
    Datum values[4] = {Int64GetDatum(static_cast<int64>(shard_id)), ObjectIdGetDatum(shell), ObjectIdGetDatum(nsp),
                       PointerGetDatum(construct_array(names, ntables, TEXTOID, -1, false, TYPALIGN_INT))};
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "crm_native: SPI_connect failed");
    int rc = SPI_execute_with_args(kColocatedShards, 4, types, values, nullptr, true, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "crm_native: reading Citus' shard metadata failed: %s", SPI_result_code_string(rc));
    if (SPI_processed == 0) {
        // Not shard <id> of <base>: a plain table with a shard-like name, or a
        // distributed table whose metadata this node lacks. The latter must
        // not fall back to the distributed table's name (a statement from
        // inside a shard would go back through the distributed planner).
        rc = SPI_execute_with_args(
            "SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            1, &types[1], &values[1], nullptr, true, 1);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "crm_native: reading Citus' shard metadata failed: %s", SPI_result_code_string(rc));
        if (SPI_processed > 0) misplaced(rel, base, "has no shard of that id in Citus' metadata on this node");
    } else {
        out->is_shard = true;
        out->self_shell = shell;
        if (SPI_processed != static_cast<uint64>(ntables)) elog(ERROR, "crm_native: unexpected Citus metadata");
        for (uint64 r = 0; r < SPI_processed; r++) {
            HeapTuple row = SPI_tuptable->vals[r];
            TupleDesc desc = SPI_tuptable->tupdesc;
            bool null;
            int t = DatumGetInt32(SPI_getbinval(row, desc, 1, &null)) - 1;
            if (null || t < 0 || t >= ntables) elog(ERROR, "crm_native: unexpected Citus metadata");
            Oid table_shell = DatumGetObjectId(SPI_getbinval(row, desc, 2, &null));
            if (null) misplaced(rel, tables[t], "does not exist in its schema");
            bool flag = DatumGetBool(SPI_getbinval(row, desc, 6, &null));
            if (null || !flag) misplaced(rel, base, "is not hash-distributed (a reference or local table)");
            flag = DatumGetBool(SPI_getbinval(row, desc, 4, &null));
            if (null || !flag) misplaced(rel, tables[t], "is not hash-distributed");
            flag = DatumGetBool(SPI_getbinval(row, desc, 5, &null));
            if (null || !flag) misplaced(rel, tables[t], "is not co-located with it");
            int64 id = DatumGetInt64(SPI_getbinval(row, desc, 3, &null));
            if (null) misplaced(rel, tables[t], "has no shard for the same hash range");
            if (snprintf(NameStr(out->shard_name[t]), NAMEDATALEN, "%s_" INT64_FORMAT, tables[t], id) >=
                NAMEDATALEN)
                misplaced(rel, tables[t], "has a name too long for its shard name");
            out->shell[t] = table_shell;
            out->shard[t] = get_relname_relid(NameStr(out->shard_name[t]), nsp);
            if (!OidIsValid(out->shard[t])) misplaced(rel, tables[t], "has its co-located shard on another node");
        }
    }
    SPI_finish();
}

}  // namespace

void forget_dropped_placements(bool (*gone)(Oid)) { store::forget_gone_entries(entries, gone); }

const Placement* placement_for(Relation rel, const char* const* tables, int ntables, uint64 invalidations) {
    if (ntables > kMaxTables) elog(ERROR, "crm_native: too many tables for a Citus placement");
    if (entries == nullptr) {
        HASHCTL ctl;
        std::memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(Oid);
        ctl.entrysize = sizeof(Entry);
        ctl.hcxt = TopMemoryContext;
        entries = hash_create("crm_native Citus placements", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    Oid relid = RelationGetRelid(rel);
    bool found;
    Entry* entry = static_cast<Entry*>(hash_search(entries, &relid, HASH_ENTER, &found));
    if (found && entry->checked_at == invalidations) return &entry->placement;
    // Left unresolved (checked_at 0) until complete: an error on the way
    // leaves nothing half-set.
    entry->checked_at = 0;
    Placement resolved;
    resolve(rel, tables, ntables, &resolved);
    entry->placement = resolved;
    entry->checked_at = invalidations;
    return &entry->placement;
}

}  // namespace crm::pg::citus

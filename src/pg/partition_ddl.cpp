// crm_native._ddl_new_tables(pg_ddl_command) RETURNS oid[]: the tables one
// DDL command created (CREATE TABLE) or attached as partitions (ALTER TABLE
// ... ATTACH PARTITION), for the event trigger crm_native_partition_triggers
// (src/sql/55_partition_triggers.sql). That trigger gives the metrics
// statement triggers to exactly these tables, never to the others a command
// merely touched: an ALTER TABLE ... DISABLE TRIGGER in a pg_dump script
// must not create the partitions' triggers before the script does.
//
// The command is PostgreSQL's own record of it (tcop/deparse_utility.h):
// CREATE TABLE's address is the new table; an ALTER TABLE keeps one entry
// per subcommand, but records no address for ATTACH PARTITION, so the
// attached table is found by the name the command gave it among the
// altered table's partitions (by name, not through search_path: the event
// trigger runs with its own).
#include "pg/guard.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "tcop/deparse_utility.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
}
#pragma GCC diagnostic pop

#include <cstring>

extern "C" {
PG_FUNCTION_INFO_V1(crm_ddl_new_tables);
Datum crm_ddl_new_tables(PG_FUNCTION_ARGS);
}

namespace {

Datum ddl_new_tables(FunctionCallInfo fcinfo) {
    const CollectedCommand* command = reinterpret_cast<const CollectedCommand*>(PG_GETARG_POINTER(0));
    List* tables = NIL;
    if (command->type == SCT_Simple && command->parsetree != nullptr && IsA(command->parsetree, CreateStmt) &&
        command->d.simple.address.classId == RelationRelationId) {
        tables = lappend_oid(tables, command->d.simple.address.objectId);
    } else if (command->type == SCT_AlterTable) {
        ListCell* cell;
        foreach (cell, command->d.alterTable.subcmds) {
            const CollectedATSubcmd* sub = static_cast<const CollectedATSubcmd*>(lfirst(cell));
            if (sub->parsetree == nullptr || !IsA(sub->parsetree, AlterTableCmd)) continue;
            const AlterTableCmd* cmd = reinterpret_cast<const AlterTableCmd*>(sub->parsetree);
            if (cmd->subtype != AT_AttachPartition || cmd->def == nullptr || !IsA(cmd->def, PartitionCmd)) continue;
            const RangeVar* name = reinterpret_cast<const PartitionCmd*>(cmd->def)->name;
            if (name == nullptr || name->relname == nullptr) continue;
            List* children = find_inheritance_children(command->d.alterTable.objectId, NoLock);
            ListCell* child;
            foreach (child, children) {
                Oid relid = lfirst_oid(child);
                char* relname = get_rel_name(relid);
                if (relname == nullptr || std::strcmp(relname, name->relname) != 0) continue;
                if (name->schemaname != nullptr) {
                    char* schema = get_namespace_name(get_rel_namespace(relid));
                    if (schema == nullptr || std::strcmp(schema, name->schemaname) != 0) continue;
                }
                tables = lappend_oid(tables, relid);
            }
            list_free(children);
        }
    }
    int n = list_length(tables);
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) elems[i] = ObjectIdGetDatum(list_nth_oid(tables, i));
    PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

}  // namespace

Datum crm_ddl_new_tables(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum { return ddl_new_tables(fcinfo); });
}

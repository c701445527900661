// crm_native._restore_trigger(rel regclass, trigger_name text, definition text):
// uninstall() puts back an application trigger that install() recorded in
// crm_native.replaced_trigger (src/sql/50_install.sql).
//
// The recorded text is data, not code to trust: a superuser calls uninstall()
// on every schema before DROP EXTENSION, and a record may have been written
// by someone else (before 0.8.0 the docs had table owners granted write
// access to the registry, and a superuser can edit it). So the text must
// parse as exactly one CREATE TRIGGER of that name on that table, and it runs
// with the rights of the table's owner, the one role that could have created
// that trigger, as PostgreSQL runs the maintenance of a table as its owner
// (a security-restricted operation: no SET ROLE, no temporary objects).
// Whatever a record says, restoring it does no more than its table's owner
// could do with one CREATE TRIGGER on that table.
#include "pg/guard.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wregister"
extern "C" {
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}
#pragma GCC diagnostic pop

#include <cstring>

extern "C" {
PG_FUNCTION_INFO_V1(crm_restore_trigger);
Datum crm_restore_trigger(PG_FUNCTION_ARGS);
}

namespace {

[[noreturn]] void refuse(Oid relid, const char* trigger_name, const char* why, const char* definition) {
    ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                    errmsg("crm_native: the recorded definition of trigger \"%s\" on %s is not restored: %s",
                           trigger_name,
                           quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)),
                           why),
                    errdetail("Recorded: %s", definition),
                    errhint("crm_native.replaced_trigger holds what install() read from pg_get_triggerdef(); "
                            "a record edited since is refused. Check it against the application's migrations; "
                            "correct it, or delete it and create the trigger by hand after uninstall().")));
}

Datum restore_trigger(FunctionCallInfo fcinfo) {
    Oid relid = PG_GETARG_OID(0);
    char* trigger_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
    char* definition = text_to_cstring(PG_GETARG_TEXT_PP(2));

    // The caller drops and creates triggers on the table: it must own it
    // (uninstall() has already dropped the native ones, which needs the
    // same). Checked before the lock too, so that no other role can take
    // it (and queue every writer of the table behind it; found by an
    // independent review).
    Oid owner = InvalidOid;
    for (int pass = 0; pass < 2; pass++) {
        HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
        if (!HeapTupleIsValid(tuple))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("crm_native: no table with OID %u", relid)));
        owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
        const char relkind = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relkind;
        char* name = pstrdup(NameStr(reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relname));
        ReleaseSysCache(tuple);
        if (!pg_class_ownercheck(relid, GetUserId())) aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(relkind), name);
        // Then the lock CREATE TRIGGER takes: the table cannot be dropped
        // while its name is looked up and its trigger restored (a
        // concurrent DROP left refuse() without a name; found by an
        // independent review). Taking it takes in the invalidations of what
        // committed meanwhile, and the second pass reads the table again.
        if (pass == 0) LockRelationOid(relid, ShareRowExclusiveLock);
    }

    List* statements = raw_parser(definition, RAW_PARSE_DEFAULT);
    if (list_length(statements) != 1) refuse(relid, trigger_name, "it is not exactly one statement", definition);
    Node* statement = linitial_node(RawStmt, statements)->stmt;
    if (!IsA(statement, CreateTrigStmt)) refuse(relid, trigger_name, "it is not a CREATE TRIGGER", definition);
    const CreateTrigStmt* create = reinterpret_cast<const CreateTrigStmt*>(statement);
    if (create->replace) refuse(relid, trigger_name, "it replaces an existing trigger (OR REPLACE)", definition);
    if (create->trigname == nullptr || std::strcmp(create->trigname, trigger_name) != 0)
        refuse(relid, trigger_name, "it creates a trigger of another name", definition);
    // pg_get_triggerdef() under search_path pg_catalog qualifies the table
    if (create->relation == nullptr || create->relation->schemaname == nullptr ||
        RangeVarGetRelid(create->relation, NoLock, true) != relid)
        refuse(relid, trigger_name, "it names another table", definition);

    Oid caller;
    int security_context;
    GetUserIdAndSecContext(&caller, &security_context);
    SetUserIdAndSecContext(owner, security_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    int guc_level = NewGUCNestLevel();  // settings the statement changes end with it
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                            0, false);
    // An error below aborts the (sub)transaction, which restores the user id
    // and the settings, as for PostgreSQL's own maintenance commands.
    if (SPI_connect() != SPI_OK_CONNECT) ereport(ERROR, (errmsg("crm_native: SPI_connect failed")));
    int rc = SPI_execute(definition, false, 0);
    if (rc != SPI_OK_UTILITY)
        ereport(ERROR, (errmsg("crm_native: restoring trigger \"%s\" returned %s", trigger_name,
                               SPI_result_code_string(rc))));
    // The owner could create a trigger calling anybody's function it may
    // execute; a record planted by another role (possible up to 0.7.0, when
    // table owners could write the registry) would run that role's code as
    // whoever writes the table. A restored trigger depends only on
    // functions, operators and types (a domain's CHECK runs code) of the
    // table's owner, of a superuser, or of a role the (non-superuser) owner
    // has the rights of: a superuser has every role's rights, which would
    // let any role's object through.
    Oid argtypes[3] = {OIDOID, TEXTOID, OIDOID};
    Datum args[3] = {ObjectIdGetDatum(relid), CStringGetTextDatum(trigger_name), ObjectIdGetDatum(owner)};
    rc = SPI_execute_with_args(
        "SELECT string_agg(DISTINCT x.what || ' of ' || quote_ident(r.rolname), ', ')"
        "  FROM pg_trigger t"
        "  JOIN pg_depend d ON d.classid = 'pg_trigger'::regclass AND d.objid = t.oid"
        "  CROSS JOIN LATERAL ("
        "        SELECT 'function ' || p.oid::regprocedure AS what, p.proowner AS owner FROM pg_proc p"
        "         WHERE d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid"
        "        UNION ALL"
        "        SELECT 'operator ' || o.oid::regoperator, o.oprowner FROM pg_operator o"
        "         WHERE d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid"
        "        UNION ALL"
        "        SELECT 'function ' || o.oprcode::regprocedure, p.proowner FROM pg_operator o"
        "          JOIN pg_proc p ON p.oid = o.oprcode"
        "         WHERE d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid"
        "        UNION ALL"
        "        SELECT 'type ' || y.oid::regtype, y.typowner FROM pg_type y"
        "         WHERE d.refclassid = 'pg_type'::regclass AND y.oid = d.refobjid) x"
        "  JOIN pg_roles r ON r.oid = x.owner"
        " WHERE t.tgrelid = $1 AND t.tgname = $2 AND NOT t.tgisinternal"
        "   AND x.owner <> $3 AND NOT r.rolsuper"
        "   AND NOT ((SELECT NOT o.rolsuper FROM pg_roles o WHERE o.oid = $3) AND pg_has_role($3, x.owner, 'USAGE'))",
        3, argtypes, args, nullptr, false, 1);  // not read-only: it must see the new trigger
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        ereport(ERROR, (errmsg("crm_native: checking restored trigger \"%s\" returned %s", trigger_name,
                               SPI_result_code_string(rc))));
    bool isnull;
    Datum foreign = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull)
        refuse(relid, trigger_name,
               psprintf("it uses objects of roles whose rights the table's owner does not have: %s",
                        TextDatumGetCString(foreign)),
               definition);
    SPI_finish();
    AtEOXact_GUC(false, guc_level);
    SetUserIdAndSecContext(caller, security_context);
    PG_RETURN_VOID();
}

}  // namespace

Datum crm_restore_trigger(PG_FUNCTION_ARGS) {
    return crm::pg::run_guarded([&]() -> Datum { return restore_trigger(fcinfo); });
}

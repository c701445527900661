#include "pg/guard.hpp"

namespace crm::pg::detail {

void raise_captured(ErrorData* pg_error, int sqlstate, const char* message) {
    if (pg_error != nullptr) ReThrowError(pg_error);
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", message)));
    pg_unreachable();
}

}  // namespace crm::pg::detail

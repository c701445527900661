// Included first by every src/core header. src/core is pure C++17 and must
// build without PostgreSQL: when a core translation unit is compiled
// (CRM_CORE_TU, set by the Makefile and meson for src/core/*.cpp only), a
// backend header that got in, directly or through another header, stops the
// build here, rather than let postgres.h macros (elog, palloc, ereport...)
// leak into code that may throw. src/pg may include core headers freely.
#pragma once

#if defined(CRM_CORE_TU) && (defined(POSTGRES_H) || defined(PG_VERSION_NUM) || defined(FMGR_H))
#error "src/core must not include PostgreSQL headers; put backend code in src/pg"
#endif

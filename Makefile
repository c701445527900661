# crm_native: PGXS build.
#   make                 build crm_native.so and the extension script
#   make install         install into the PostgreSQL that PG_CONFIG names
#   make installcheck    run the SQL suites (pg_regress, isolation, pgTAP) against
#                        the server in PGHOST/PGPORT (scripts/run_sql_suites.sh;
#                        sql/guard.sql needs a CRM_TEST_FUNCTIONS=1 library)
#   make test            everything, on a throwaway cluster (scripts/test.sh)
#   make memcheck        the memory-checked subset (scripts/memcheck.sh)
#
# WERROR=1 turns warnings into errors (the test command sets it).
# CRM_TEST_FUNCTIONS=1 also builds the test-only SQL-callable functions
#   (src/pg/guard_test.cpp); the test command sets it. Without it the library
#   has no test symbol: what `make install` ships.
# SANITIZE=address,undefined instruments the library (scripts/memcheck.sh);
#   such a library loads only into a server started with libasan preloaded.

EXTENSION  = crm_native
EXTVERSION = 0.8.0
MODULE_big = crm_native

CORE_SRCS = $(sort $(wildcard src/core/*.cpp))
# Test-only entry points: linked in only with CRM_TEST_FUNCTIONS=1.
TEST_SRCS = src/pg/guard_test.cpp
PG_SRCS   = $(filter-out $(TEST_SRCS),$(sort $(wildcard src/pg/*.cpp)))
ifeq ($(CRM_TEST_FUNCTIONS),1)
PG_SRCS  += $(TEST_SRCS)
endif
OBJS      = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# The extension script is the ordered concatenation of src/sql/NN_*.sql:
# one fragment per feature, so each feature owns its SQL.
SQL_FRAGMENTS = $(sort $(wildcard src/sql/*.sql))
# Upgrade scripts. Released versions are frozen in src/sql/released/: the
# install scripts the upgrade test starts from (not installed) and the upgrade
# scripts as released (installed). The upgrade from the previous release to
# this version is generated: src/sql/upgrade/$(PREV_VERSION)--$(EXTVERSION).sql,
# then the fragments new in this version, then the functions it added to older
# fragments or changed, as the fragments define them (CREATE OR REPLACE).
# When this version is released, freeze the generated install and upgrade
# scripts in src/sql/released/, add them to DATA, and retarget these lines.
PREV_VERSION      = 0.7.0
UPGRADE_FRAGMENTS = src/sql/00_check_schema.sql src/sql/25_lock_secret.sql
UPGRADE_FUNCTIONS = _schema_requirements _lock_trigger_tables _missing_columns missing_objects verify_schema _native_stand_ins _has_native_triggers _registry_problems _require_registries_untriggered _record_replaced_trigger _forget_replaced_trigger _record_installed_schema _forget_installed_schema _left_partition_triggers _require_registry_writers install uninstall _partition_ddl_end health _relink_batch _merge_candidates _merge_outcomes _merged_keys _keys_hidden_by_row_security _expected_keys rebuild_matching_keys _index_leading_with _search_query verify_metrics _require_crm_schema search_customers merge_customers rebuild_metrics
DATA_built    = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)--$(PREV_VERSION)--$(EXTVERSION).sql
DATA          = src/sql/released/$(EXTENSION)--0.1.0--0.2.0.sql src/sql/released/$(EXTENSION)--0.2.0--0.3.0.sql \
                src/sql/released/$(EXTENSION)--0.3.0--0.4.0.sql src/sql/released/$(EXTENSION)--0.4.0--0.5.0.sql \
                src/sql/released/$(EXTENSION)--0.5.0--0.6.0.sql src/sql/released/$(EXTENSION)--0.6.0--0.7.0.sql

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)

ICU_CFLAGS := $(shell pkg-config --cflags icu-uc icu-i18n 2>/dev/null)
ICU_LIBS   := $(shell pkg-config --libs icu-uc icu-i18n 2>/dev/null || echo -licui18n -licuuc -licudata)

PG_CPPFLAGS = -Isrc $(ICU_CFLAGS)
# Versions reported by crm_native.version_info(). libphonenumber 8.12 has no
# run-time version API: record the one this build is compiled against.
PHONENUMBER_VERSION := $(shell dpkg-query -W -f='$${Version}' libphonenumber-dev 2>/dev/null || echo unknown)
PG_CPPFLAGS += -DCRM_NATIVE_VERSION=\"$(EXTVERSION)\" -DCRM_PHONENUMBER_VERSION=\"$(PHONENUMBER_VERSION)\"
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -fvisibility-inlines-hidden
# PGXS does not track header dependencies: have g++ write them (src/**/*.d),
# so a changed header recompiles every file that includes it.
PG_CXXFLAGS += -MMD -MP
ifeq ($(WERROR),1)
PG_CXXFLAGS += -Werror
endif
ifeq ($(CRM_TEST_FUNCTIONS),1)
PG_CPPFLAGS += -DCRM_TEST_FUNCTIONS
endif
ifneq ($(SANITIZE),)
PG_CXXFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
endif
# PGXS links with gcc, not g++: name the C++ runtime explicitly.
SHLIB_LINK = -lphonenumber $(ICU_LIBS) -lstdc++
ifneq ($(SANITIZE),)
SHLIB_LINK += -fsanitize=$(SANITIZE)
endif

EXTRA_CLEAN = $(DATA_built) $(OBJS:.o=.d) $(TEST_SRCS:.cpp=.o) $(TEST_SRCS:.cpp=.bc) $(TEST_SRCS:.cpp=.d) .build-flags

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Debian's PGXS also emits LLVM bitcode with clang; its flags do not include
# PG_CXXFLAGS, so give it the language level the sources are written in.
override BITCODE_CXXFLAGS += -std=c++17 -Isrc $(ICU_CFLAGS)

# src/core is pure C++: compile it without the PostgreSQL include paths, so an
# #include of a backend header there fails to build (also under meson).
src/core/%.o: override CPPFLAGS := -Isrc $(ICU_CFLAGS) -D_GNU_SOURCE -DCRM_CORE_TU
src/core/%.bc: override CPPFLAGS := -Isrc $(ICU_CFLAGS) -D_GNU_SOURCE -DCRM_CORE_TU

# The first statement of the install and upgrade scripts: every top-level
# statement runs with pg_catalog alone on the path. CREATE EXTENSION puts the
# extension's schema and pg_trgm's (which a tenant may own) on it, and an
# operator or function there with the exact argument types would win over
# pg_catalog's, and run as the superuser (found by an independent review).
SCRIPT_SEARCH_PATH = SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_FRAGMENTS) Makefile
	@{ printf '%s\n' '-- crm_native $(EXTVERSION): generated from src/sql/*.sql, do not edit'; \
	   printf '%s\n' '\echo Use "CREATE EXTENSION crm_native" to load this file. \quit'; \
	   printf '%s\n' "$(SCRIPT_SEARCH_PATH)"; \
	   for f in $(SQL_FRAGMENTS); do printf '\n-- ---- %s\n' "$$f"; cat "$$f"; done; } > $@

$(EXTENSION)--$(PREV_VERSION)--$(EXTVERSION).sql: src/sql/upgrade/$(PREV_VERSION)--$(EXTVERSION).sql $(wildcard src/sql/upgrade/$(PREV_VERSION)--$(EXTVERSION).post.sql) $(SQL_FRAGMENTS) Makefile
	@{ printf '%s\n' '-- crm_native $(PREV_VERSION) -> $(EXTVERSION): generated from src/sql/upgrade/$(PREV_VERSION)--$(EXTVERSION).sql and src/sql/*.sql, do not edit'; \
	   printf '%s\n' "$(SCRIPT_SEARCH_PATH)"; \
	   cat src/sql/upgrade/$(PREV_VERSION)--$(EXTVERSION).sql; \
	   for f in $(UPGRADE_FRAGMENTS); do printf '\n-- ---- %s\n' "$$f"; cat "$$f"; done; \
	   for fn in $(UPGRADE_FUNCTIONS); do \
	     printf '\n-- ---- crm_native.%s() as src/sql/*.sql defines it\n' "$$fn"; \
	     sed -n "/^CREATE FUNCTION crm_native.$$fn(/,/^\$$[a-z]*\$$;$$/p" $(SQL_FRAGMENTS) | sed '1s/^CREATE FUNCTION/CREATE OR REPLACE FUNCTION/'; \
	   done; \
	   post=src/sql/upgrade/$(PREV_VERSION)--$(EXTVERSION).post.sql; \
	   if [ -f $$post ]; then printf '\n-- ---- %s\n' "$$post"; cat $$post; fi; } > $@

all: $(DATA_built)

# The library is relinked when the flags that choose its objects or
# instrumentation change (a library built with CRM_TEST_FUNCTIONS=1 must not
# survive a later plain `make`). .build-flags is rewritten only when they differ.
CRM_BUILD_FLAGS := test_functions=$(CRM_TEST_FUNCTIONS) sanitize=$(SANITIZE)
.build-flags: FORCE
	@echo '$(CRM_BUILD_FLAGS)' | cmp -s - $@ || echo '$(CRM_BUILD_FLAGS)' > $@
$(shlib): .build-flags
# The version is compiled in (crm_native.version_info()).
src/pg/normalize.o: Makefile
.PHONY: FORCE
FORCE:

.PHONY: test installcheck memcheck
installcheck:
	bash scripts/run_sql_suites.sh

test:
	bash scripts/test.sh

memcheck:
	bash scripts/memcheck.sh

-include $(OBJS:.o=.d)

# job_engine: PGXS build.
#
#   make                 build the extension (warnings are errors)
#   make install         install into the PostgreSQL found by PG_CONFIG
#   make installcheck    run every test suite, each against a temporary
#                        instance of its own (needs `make install
#                        install-examples` first, and a user that may run
#                        PostgreSQL: not root)
#   scripts/test.sh      install the packages, build, install into a private
#                        copy of PostgreSQL and run the suites through the
#                        targets below
#
# The suites, and the targets that run them:
#   installcheck-regress    sql/*.sql + expected/*.out         pg_regress
#   installcheck-pgtap      test/pgtap/*.sql                   pg_prove
#   installcheck-isolation  test/specs/*.spec + test/expected  pg_isolation_regress
#   installcheck-tap        test/t/*.pl                        prove
# Each target takes the list of its tests in REGRESS, PGTAP_TESTS, ISOLATION
# or PROVE_TESTS.  See docs/testing.md.

EXTENSION  = job_engine
MODULE_big = job_engine
HEADERS    = src/job_engine.h

# Versions (docs/upgrading.md).  The current one, default_version of the
# control file, is installed by a script built from the pieces below; each
# earlier release by its frozen install script in src/sql/releases/.  The
# update from the previous release is built from its hand-written part,
# src/sql/updates/PREVIOUS--CURRENT.sql, and the pieces; older updates are
# frozen in src/sql/releases/ too.  The library serves the versions listed
# in src/version.c.
CURRENT_VERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(dir $(firstword $(MAKEFILE_LIST)))job_engine.control)
PREVIOUS_VERSION = 1.0
UPDATE_SCRIPT = job_engine--$(PREVIOUS_VERSION)--$(CURRENT_VERSION).sql
DATA_built = job_engine--$(CURRENT_VERSION).sql $(UPDATE_SCRIPT)
DATA       = $(wildcard $(dir $(firstword $(MAKEFILE_LIST)))src/sql/releases/*.sql)

# The install script is built from these pieces, in this (load) order.
SQL_PIECES = \
	src/sql/00_schema.sql \
	src/sql/10_tables.sql \
	src/sql/20_guard.sql \
	src/sql/30_wakeup.sql \
	src/sql/31_execution_context.sql \
	src/sql/40_validation.sql \
	src/sql/50_handlers.sql \
	src/sql/52_native_handlers.sql \
	src/sql/60_jobs.sql \
	src/sql/70_claim.sql \
	src/sql/72_outcome.sql \
	src/sql/74_recovery.sql \
	src/sql/80_events.sql \
	src/sql/82_queues.sql \
	src/sql/84_schedules.sql \
	src/sql/86_retention.sql \
	src/sql/90_views.sql \
	src/sql/92_observability.sql \
	src/sql/96_databases.sql \
	src/sql/98_comments.sql \
	src/sql/99_privileges.sql

OBJS = \
	src/job_engine.o \
	src/settings.o \
	src/shmem.o \
	src/wait_events.o \
	src/metrics.o \
	src/running.o \
	src/deferred.o \
	src/wakeup.o \
	src/gate.o \
	src/worker.o \
	src/launcher.o \
	src/supervisor.o \
	src/recovery.o \
	src/vacuum.o \
	src/internal_sql.o \
	src/execution_context.o \
	src/native_handler.o \
	src/handler_function.o \
	src/dispatch.o \
	src/claim.o \
	src/outcome.o \
	src/failure_log.o \
	src/guard.o \
	src/visibility.o \
	src/executor.o \
	src/attempt.o \
	src/group_commit.o \
	src/database_guard.o \
	src/drop_guard.o \
	src/schedule_room.o \
	src/version.o

# Tests.  pg_regress and pg_isolation_regress make a temporary instance
# (--temp-instance) with the settings of TEST_CONFIG (job_engine and pg_cron
# preloaded, the test databases served); TAP tests start their own nodes
# (test/t/JobEngineNode.pm) and test/run_pgtap.sh makes one for pgTAP.
TEST_CONFIG = $(srcdir)/test/temp_instance.conf
# Like the clusters of scripts/demo.sh: UTF8, C locale.
ENCODING = UTF8
NO_LOCALE = 1

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(TEST_CONFIG) \
	--load-extension=job_engine

ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(TEST_CONFIG) \
	--inputdir=$(srcdir)/test --load-extension=job_engine

TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PGTAP_TESTS = $(sort $(wildcard test/pgtap/*.sql))

# PGXS's installcheck would stop at the first failing suite and knows no
# pgTAP: ours below runs all four.
NO_INSTALLCHECK = 1
EXTRA_CLEAN = tmp_check_pgtap

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
# Warnings are errors.  -Wno-unused-parameter and -Wno-missing-field-initializers
# silence what PostgreSQL's own headers and fmgr macros unavoidably trigger
# under -Wextra; -Wno-sign-compare matches PostgreSQL's own build.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(PGXS),)
$(error $(PG_CONFIG) is not a pg_config that runs: set PG_CONFIG to the pg_config of the PostgreSQL to build for, e.g. /usr/lib/postgresql/15/bin/pg_config (install postgresql-server-dev-15))
endif
include $(PGXS)

# PGXS rebuilds by the sources' dates only, so a tree built for one major
# version of PostgreSQL would install those objects into another.  .pg_major
# records the major version the tree was last built for; when PG_CONFIG
# names another one, the objects (the example module's too) are removed
# before anything is made.
BUILT_FOR := $(shell cat .pg_major 2>/dev/null)
ifneq ($(BUILT_FOR),$(MAJORVERSION))
$(shell rm -f src/*.o src/*.bc $(MODULE_big)$(DLSUFFIX) \
	examples/c_handler/*.o examples/c_handler/*.bc examples/c_handler/*$(DLSUFFIX); \
	echo '$(MAJORVERSION)' > .pg_major)
endif
EXTRA_CLEAN += .pg_major

# PGXS does not track header dependencies; shared-memory structs live in
# headers, so every object must be rebuilt when any of them changes.
$(OBJS): $(wildcard src/*.h)

# The pieces one after the other, a blank line between two.
job_engine--$(CURRENT_VERSION).sql: $(SQL_PIECES) Makefile
	awk 'FNR == 1 && NR > 1 { print "" } { print }' $(SQL_PIECES) > $@

# The hand-written part with the functions and views of the pieces, and the
# privileges piece, in place of its "-- @definitions" line.
$(UPDATE_SCRIPT): src/sql/updates/$(PREVIOUS_VERSION)--$(CURRENT_VERSION).sql $(SQL_PIECES) \
		scripts/build_update_script.pl Makefile
	perl scripts/build_update_script.pl $< $(filter-out src/sql/99_privileges.sql,$(SQL_PIECES)) \
		--whole src/sql/99_privileges.sql > $@.tmp
	mv $@.tmp $@

# Every suite runs, even when an earlier one failed.
.PHONY: installcheck installcheck-regress installcheck-pgtap \
	installcheck-isolation installcheck-tap
installcheck:
	@failed=; \
	for suite in regress pgtap isolation tap; do \
		$(MAKE) --no-print-directory installcheck-$$suite || failed="$$failed $$suite"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed suites:$$failed"; exit 1; fi

installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

# TAP tests load test/t/JobEngineNode.pm; prove_installcheck puts $(bindir)
# first in PATH, so PostgreSQL::Test::Cluster runs that installation.
PG_PROVE_FLAGS += -I $(srcdir)/test/t
installcheck-tap:
	$(prove_installcheck)

installcheck-pgtap:
	$(srcdir)/test/run_pgtap.sh '$(bindir)' $(TEST_CONFIG) $(PGTAP_TESTS)

# The example native handler module (examples/c_handler) is built and
# installed by the test harness, not by a plain `make install`.
.PHONY: examples install-examples clean-examples
examples:
	$(MAKE) -C examples/c_handler PG_CONFIG=$(PG_CONFIG)
install-examples: examples
	$(MAKE) -C examples/c_handler PG_CONFIG=$(PG_CONFIG) install
clean-examples:
	$(MAKE) -C examples/c_handler PG_CONFIG=$(PG_CONFIG) clean
clean: clean-examples

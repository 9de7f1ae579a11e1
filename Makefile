# job_engine: PGXS build.
#
#   make                 build the extension (warnings are errors)
#   make install         install into the PostgreSQL found by PG_CONFIG
#   scripts/test.sh      build, install into a private copy and run every suite
#
# The pg_regress suites listed in REGRESS live in sql/ + expected/; pgTAP,
# isolation and TAP suites live under test/ and are driven by scripts/test.sh.

EXTENSION  = job_engine
MODULE_big = job_engine
DATA_built = job_engine--1.0.sql
HEADERS    = src/job_engine.h

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
	src/sql/99_privileges.sql

OBJS = \
	src/job_engine.o \
	src/settings.o \
	src/shmem.o \
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
	src/claim.o \
	src/outcome.o \
	src/guard.o \
	src/executor.o \
	src/attempt.o \
	src/group_commit.o \
	src/drop_guard.o

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=job_engine

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
# Warnings are errors.  -Wno-unused-parameter and -Wno-missing-field-initializers
# silence what PostgreSQL's own headers and fmgr macros unavoidably trigger
# under -Wextra; -Wno-sign-compare matches PostgreSQL's own build.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare
# Until drop_guard.c marks the variables its PG_TRY block reads volatile.
src/drop_guard.o: override CFLAGS += -Wno-clobbered

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies; shared-memory structs live in
# headers, so every object must be rebuilt when any of them changes.
$(OBJS): $(wildcard src/*.h)

# The pieces one after the other, a blank line between two.
job_engine--1.0.sql: $(SQL_PIECES) Makefile
	awk 'FNR == 1 && NR > 1 { print "" } { print }' $(SQL_PIECES) > $@

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

# safe_backfill: PGXS build
MODULE_big = safe_backfill
OBJS = safe_backfill.o src/target.o src/value.o src/expression.o src/sqlgen.o src/iterate.o src/backfill.o src/locking.o src/not_null.o src/not_null_native.o src/space.o src/replicas.o src/jobs.o src/parallel.o src/citus.o
EXTENSION = safe_backfill
DATA = safe_backfill--1.0.sql
PGFILEDESC = "safe_backfill - batched backfill and NOT NULL without downtime"

PG_CPPFLAGS = -I$(srcdir) -I$(libpq_srcdir)
# citus.c runs each shard's backfill on its node over libpq, like dblink
SHLIB_LINK_INTERNAL = $(libpq)

REGRESS = basic keys errors settings quoting commits idempotence not_null space jobs parallel parallel_settings failures security table_am clear_errors long_runs commit_mode expression hot_rounds expression_tree expression_checks

ISOLATION = backfill_concurrent backfill_cancel batch_row_locks set_not_null_locks space_reuse rename_midrun set_not_null_rename final_check advisory_keyspace key_dropped set_not_null_concurrent expression_concurrent hot_rounds_moved
ISOLATION_OPTS = --inputdir=test --outputdir=test/output_iso

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Run one kind of test at a time against an already running server.
installcheck-regress-only:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-isolation-only:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

installcheck-tap-only:
	$(prove_installcheck)

# every object includes the shared header: rebuild them all when it changes
$(OBJS): safe_backfill.h src/compat.h

# safe_backfill: PGXS build
MODULE_big = safe_backfill
OBJS = safe_backfill.o src/target.o src/value.o src/change.o src/expression.o src/sqlgen.o src/iterate.o src/keys.o src/xact.o src/settings.o src/pass.o src/backfill.o src/locking.o src/not_null.o src/not_null_native.o src/validate.o src/request.o src/detached.o src/space.o src/replicas.o src/jobs.o src/serial.o src/parallel.o src/citus_nodes.o src/citus.o
EXTENSION = safe_backfill
DATA = safe_backfill--1.0.sql safe_backfill--1.0--1.1.sql safe_backfill--1.1.sql safe_backfill--1.1--1.2.sql safe_backfill--1.2.sql safe_backfill--1.2--1.3.sql safe_backfill--1.3.sql
PGFILEDESC = "safe_backfill - batched backfill and NOT NULL without downtime"

PG_CPPFLAGS = -I$(srcdir) -I$(libpq_srcdir)
# citus.c runs each shard's backfill on its node over libpq, like dblink
SHLIB_LINK_INTERNAL = $(libpq)

# Every regress file starts from a database with the extension created (and
# must pass alone: see installcheck-regress-alone).
REGRESS_OPTS = --inputdir=test --load-extension=safe_backfill
REGRESS = basic keys errors settings quoting commits idempotence not_null space jobs parallel parallel_settings failures security table_am clear_errors long_runs commit_mode expression hot_rounds hot_partitioned set_not_null_cancel error_context job_owners job_retention job_forget expression_tree expression_checks expression_reads detached detached_lookup update_delete update_refusals

ISOLATION = backfill_concurrent backfill_cancel batch_row_locks set_not_null_locks space_reuse rename_midrun set_not_null_rename final_check advisory_keyspace key_dropped set_not_null_concurrent expression_concurrent hot_rounds_moved set_not_null_validate_cancel partition_move rls_midrun update_concurrent delete_concurrent update_partitioned update_hot_rounds update_ddl_midrun
ISOLATION_OPTS = --inputdir=test --outputdir=test/output_iso
# what the test targets below leave in the tree
EXTRA_CLEAN = output_alone test/output_iso

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Export only the entry points (PGDLLEXPORT, see src/compat.h); 16's PGXS
# already compiles modules this way.
ifeq ($(GCC),yes)
ifeq ($(filter -fvisibility=hidden,$(CFLAGS_SL_MODULE)),)
override CFLAGS += -fvisibility=hidden
endif
endif

# Run one kind of test at a time against an already running server.
installcheck-regress-only:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

# Each regress file alone, in a fresh database of its own (alone_<file>):
# a file must not depend on what an earlier one created or left behind.  One
# line per file, "alone: <file> ... ok" or "... FAILED" followed by its diffs.
installcheck-regress-alone:
	@rm -rf output_alone && mkdir output_alone
	@failed=0; for t in $(REGRESS); do \
	  if $(pg_regress_installcheck) $(REGRESS_OPTS) --dbname=alone_$$t --outputdir=output_alone/$$t $$t \
	      >output_alone/$$t.log 2>&1; then \
	    echo "alone: $$t ... ok"; \
	  else \
	    echo "alone: $$t ... FAILED"; failed=1; \
	    cat output_alone/$$t/regression.diffs 2>/dev/null || cat output_alone/$$t.log; \
	  fi; \
	done; exit $$failed

installcheck-isolation-only:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

installcheck-tap-only:
	$(prove_installcheck)

# Rebuild an object when a header it includes changes: gcc and clang list
# them (-MMD) in a .d file next to the object.
ifeq ($(GCC),yes)
override CFLAGS += -MMD -MP
-include $(OBJS:.o=.d)
endif
EXTRA_CLEAN += $(OBJS:.o=.d)

/*
 * safe_backfill.h
 *		Shared declarations of the safe_backfill extension.
 *
 * The extension is split by concern: target.c resolves and validates what to
 * fill, value.c turns the caller's value into the column's type, sqlgen.c
 * builds every statement the extension runs, iterate.c walks the table in
 * batches and backfill.c drives batches, commits and progress.
 */
#ifndef SAFE_BACKFILL_H
#define SAFE_BACKFILL_H

#include "postgres.h"

#include "src/compat.h"

#include "access/attnum.h"
#include "storage/block.h"
#include "utils/array.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"

/* Largest batch_size accepted: beyond it a batch is no longer "small". */
#define SAFE_BACKFILL_MAX_BATCH_SIZE	1000000

/*
 * Advisory lock key spaces (LOCKTAG field4) of our own: SQL-level
 * pg_advisory_lock uses 1 (one bigint key) and 2 (two integer keys), so an
 * application's pg_advisory_lock(relid, attnum) can neither block us nor be
 * mistaken for one of ours.  Keys are (database, table, column).
 *   RUN: held by the session running safe_backfill on the column; the
 *        safe_backfill_progress view looks for it in pg_locks.objsubid.
 *   WORKERS: held in share mode by each parallel worker for its whole life.
 *   PROMOTION: held by the session running safe_set_not_null on the column.
 */
#define SAFE_BACKFILL_LOCK_SPACE			0x5342	/* "SB" */
#define SAFE_BACKFILL_WORKERS_LOCK_SPACE	0x5343
#define SAFE_BACKFILL_PROMOTION_LOCK_SPACE	0x5344

/* Sweeps that still find NULL rows before we give up and say why. */
#define SAFE_BACKFILL_MAX_SWEEPS		10
/* a batch that wrote nothing is recorded in the jobs table at most this often */
#define EMPTY_BATCH_RECORD_MS		1000

/* safe_backfill.iteration */
typedef enum IterationChoice
{
	ITERATE_AUTO,
	ITERATE_KEY,
	ITERATE_CTID
} IterationChoice;

/* GUCs (safe_backfill.c) */
extern int	safe_backfill_iteration;
extern int	safe_backfill_progress_interval_ms;
extern int	safe_backfill_lock_timeout_ms;
extern int	safe_backfill_max_lock_attempts;
extern bool safe_backfill_reuse_space;
extern bool safe_backfill_synchronous_commit;
extern int	safe_backfill_hot_rounds;
extern int	safe_backfill_target_batch_ms;
extern int	safe_backfill_batch_lock_timeout_ms;
extern int	safe_backfill_max_batch_retries;
extern int	safe_backfill_max_replica_lag_ms;
extern int	safe_backfill_max_replica_wait_ms;

/* One column of the primary key used as the keyset. */
typedef struct KeyColumn
{
	AttrNumber	attnum;
	char	   *name;
	Oid			typid;
	int16		typlen;
	bool		typbyval;
	Oid			cmpproc;		/* btree comparison support function of the key */
	Oid			collation;
	/* its btree operators, as OPERATOR(schema.name): no search_path involved */
	char	   *op_lt;
	char	   *op_le;
	char	   *op_eq;
	char	   *op_gt;
} KeyColumn;

/*
 * Everything resolved about one (table, column) pair.  It lives in the SPI
 * procedure context, which survives our commits; nothing in it points into
 * relcache or syscache entries, which do not.
 */
typedef struct BackfillTarget
{
	Oid			relid;
	char		relkind;
	char	   *nspname;
	char	   *relname;
	char	   *qualified;		/* quoted schema.table, for SQL */
	char	   *display;		/* table.column as shown in NOTICEs */
	bool		only;			/* plain table: UPDATE ONLY, skip children */
	bool		has_children;	/* plain table with inheritance children */

	AttrNumber	attnum;
	char	   *colname;
	Oid			atttypid;
	int32		atttypmod;
	bool		attnotnull;

	/* the value, already in the column's type and checked once */
	Datum		value;
	int16		typlen;
	bool		typbyval;

	/*
	 * Or, with expression => '...': its text as the caller gave it, checked
	 * by expression.c to be exactly one expression assignable to the column
	 * (value is then unused).  The statements compute it for each row.
	 */
	char	   *expression;
	int64		expression_nulls;	/* rows left NULL because it gave NULL */
	bool		expression_scs; /* standard_conforming_strings it was checked with */
	char	   *expression_search_path; /* and search_path */
	Oid			expression_temp_relid;	/* a temporary table it reads, if any */

	/* primary key, if any; nkeys == 0 means iterate by ctid ranges */
	int			nkeys;
	KeyColumn  *keys;
	char	   *key_op_schema;	/* quoted schema of the key's btree operators, or NULL */

	/* bumped when the table was renamed: statements built before are stale */
	int			generation;
	bool		said_no_space_reuse;	/* space.c: NOTICE given for a non-heap table */
} BackfillTarget;

/* What the caller asked for, after the argument checks. */
typedef struct BackfillOptions
{
	int			batch_size;		/* the size, or with target_batch_ms the largest */
	int			pause_ms;
	bool		set_not_null;	/* promote once every row is filled */
	int			target_batch_ms;	/* 0: fixed batch_size */
	int			batch_lock_timeout_ms;	/* 0: the session's lock_timeout */
	int			max_batch_retries;
	int			max_replica_lag_ms;	/* 0: do not watch standbys */
	int			max_replica_wait_ms;
	Oid			procoid;		/* our procedure: its schema holds the jobs table */
	int			workers;		/* main pass split across this many workers */
	bool		resume;			/* false: start an unfinished run over */
	int			reuse_lag;		/* batches to wait before pruning a batch's pages */
	/* in a parallel worker: the leader's stop flag and where to show progress */
	volatile bool *stop;
	struct SharedProgress *progress;
	struct RangeRecorder *range;	/* in a parallel worker: its range's record */
} BackfillOptions;

/* A parallel worker's progress, in shared memory, read by the leader. */
typedef struct SharedProgress
{
	volatile int64 rows_filled;
	volatile int64 rows_scanned;
	volatile int64 batches;
} SharedProgress;

/* Where an earlier, unfinished run of the same backfill stopped. */
typedef struct JobPosition
{
	bool		resumed;
	bool		sweeping;		/* the main pass had finished */
	bool		by_ctid;
	Datum	   *keys;			/* canonical text of the last key done, nkeys of them */
	int			nkeys;
	bool		has_block;
	int64		block;			/* next block of a ctid pass */
	int64		rows_done;
} JobPosition;

typedef struct BackfillJob BackfillJob;
typedef struct RangeRecorder RangeRecorder;

/* An unfinished range of an interrupted parallel run. */
typedef struct JobRange
{
	int			range_no;
	int64		shard_id;		/* Citus per-shard mode: the shard (else 0) */
	char	   *last_key;		/* text[] literal, or NULL: from the start */
	char	   *end_key;		/* text[] literal, or NULL: to the end */
	BlockNumber next_block;
	BlockNumber end_block;
} JobRange;

/* How ACCESS EXCLUSIVE steps wait and retry. */
typedef struct LockPolicy
{
	int			lock_timeout_ms;
	int			max_attempts;
} LockPolicy;

/* Totals of one run, for progress and the summary. */
typedef struct BackfillStats
{
	TimestampTz started;
	TimestampTz last_report;
	TimestampTz last_activity;
	double		estimated_rows;
	int64		rows_scanned;
	int64		rows_filled;
	int64		batches;
	int			sweeps;
	double		replica_wait_ms;	/* time spent waiting for standbys */
	double	   *batch_ms;		/* histogram of main-pass batch durations */
	int			ntimes;			/* batches counted in it */
	int			maxtimes;		/* its buckets */
} BackfillStats;

/* safe_backfill.c */
extern void require_nonatomic_call(FunctionCallInfo fcinfo, const char *procname,
								   const char *commits);

/* target.c */
extern BackfillTarget *resolve_target(Oid relid, const char *colname);
extern void recheck_target(BackfillTarget *target);
extern void recheck_target_with_lock(BackfillTarget *target, LOCKMODE lockmode);
extern void follow_target_rename(BackfillTarget *target);
extern void check_backfill_privileges(BackfillTarget *target);
extern Oid	relation_owner(Oid relid);
extern void require_table_owner(BackfillTarget *target, const char *procname);
extern int64 run_count_query(const char *sql, bool read_only, const char *what);
extern double estimate_table_rows(Oid relid);
extern BlockNumber table_block_count(Oid relid);
extern int	storage_relation_count(Oid relid);
extern List *storage_relations(Oid relid);
extern bool primary_key_still_serves(BackfillTarget *target);
extern void reject_instead_rules(BackfillTarget *target);

/* value.c */
extern void coerce_value_to_column(BackfillTarget *target, Datum value, Oid valtype);
struct ParseState;
extern Node *coerce_to_column(BackfillTarget *target, struct ParseState *pstate,
							  Node *expr, Oid exprtype, int location);

/* expression.c */
extern void prepare_expression(BackfillTarget *target, const char *text);
extern void recheck_expression_settings(BackfillTarget *target);
extern int64 count_computable_nulls(BackfillTarget *target);

/* sqlgen.c */
extern char *sql_key_bound(BackfillTarget *target, bool has_lower);
extern char *sql_update_key_range(BackfillTarget *target, bool has_lower, bool has_upper);
extern char *sql_update_ctid_range(BackfillTarget *target, bool has_upper);
extern char *sql_key_list(BackfillTarget *target);
extern char *sql_key_sample(BackfillTarget *target);
extern char *sql_key_range_ctids(BackfillTarget *target, bool has_lower);
extern char *sql_key_range_null_tids(BackfillTarget *target, bool has_lower);
extern char *sql_ctid_range_null_tids(BackfillTarget *target);
extern char *sql_update_key_round(BackfillTarget *target, bool has_lower);
extern char *sql_update_ctid_round(BackfillTarget *target);
extern char *sql_count_nulls(BackfillTarget *target);
extern char *sql_count_rows(Oid relid);
extern char *sql_add_not_null_check(BackfillTarget *target, const char *conname);
extern char *sql_add_not_null_not_valid(BackfillTarget *target, const char *conname);
extern char *sql_validate_constraint(BackfillTarget *target, const char *conname);
extern char *sql_set_not_null(BackfillTarget *target, const char *unused);
extern char *sql_count_nulls_left(BackfillTarget *target);
extern char *sql_expression_probe(BackfillTarget *target);
extern char *sql_count_computed_nulls(BackfillTarget *target);
extern char *sql_expression_rows_from(BackfillTarget *target, bool by_ctid, bool has_lower);
extern char *sql_compute_one_row(BackfillTarget *target);
extern char *sql_drop_constraint(BackfillTarget *target, const char *conname);
extern char *sql_lock_holders(void);
extern char *sql_replica_positions(void);
extern char *sql_hint_add_column(BackfillTarget *target, const char *colname);
extern char *sql_hint_set_default(BackfillTarget *target);
extern char *sql_hint_backfill_call(BackfillTarget *target);
extern char *sql_hint_grant_table(BackfillTarget *target, const char *role);
extern char *sql_hint_grant_role(const char *granted, const char *role);
extern char *sql_hint_set_role(const char *role);
extern char *sql_job_find_resumable(const char *table);
extern char *sql_job_insert(const char *table);
extern char *sql_job_claim(const char *table);
extern char *sql_job_record_batch(const char *table);
extern char *sql_job_finish(const char *table, const char *ranges);
extern char *sql_job_forget_position(const char *table);
extern char *sql_job_record_progress(const char *table);
extern char *sql_range_delete(const char *table);
extern char *sql_range_insert(const char *table);
extern char *sql_range_insert_shard(const char *table);
extern char *sql_range_exists(const char *table);
extern char *sql_range_load_unfinished(const char *table);
extern char *sql_range_update(const char *table);
extern char *sql_disable_rule(BackfillTarget *target, const char *rulename);
extern char *sql_citus_table_kind(void);
extern char *sql_citus_placements(void);
extern char *sql_citus_background_jobs(void);
extern char *sql_citus_extension_version(void);
extern char *sql_citus_remote_settings(int nsettings);
extern char *sql_citus_shard_call(const char *nspname, const char *typname);
extern char *sql_citus_propagate_set_local(void);
extern char *sql_set_local_lock_timeout(int ms);
extern char *sql_citus_shard_nodes(void);
extern char *sql_citus_lock_holder_snapshot(void);
extern char *sql_citus_lock_holders_left(void);

/* iterate.c */
typedef struct BatchIterator BatchIterator;
extern BatchIterator *iterator_create_keyset(BackfillTarget *target, int batch_size,
											 double rows);
extern BatchIterator *iterator_create_ctid(BackfillTarget *target, int batch_size,
										   double rows);
extern BatchIterator *iterator_create_sweep(BackfillTarget *target, int batch_size,
											double rows);
extern bool iterator_run_batch(BatchIterator *it, int64 *rows_filled, int64 *rows_scanned);
extern bool iterator_finished(BatchIterator *it);
extern int	iterator_batch_size(BatchIterator *it);
extern void iterator_set_batch_size(BatchIterator *it, int rows);
extern bool iterator_freed_blocks(BatchIterator *it, BlockNumber *start, BlockNumber *end);
extern bool iterator_by_ctid(BatchIterator *it);
extern ArrayType *iterator_position_keys(BatchIterator *it);
extern BlockNumber iterator_position_block(BatchIterator *it);
extern char *iterator_resume(BatchIterator *it, const JobPosition *pos);
extern void iterator_start_after_key(BatchIterator *it, Datum *key);
extern void iterator_limit_keys(BatchIterator *it, Datum *key);
extern char *canonical_text(Oid typid, Datum value);
extern int	canonical_setting_count(void);
extern void canonical_setting(int i, const char **name, const char **value);
extern ArrayType *canonical_key_array(BackfillTarget *t, Datum *key);
extern void canonical_key_parse(BackfillTarget *t, Datum *texts, Datum *key);
extern Datum *canonical_key_from_literal(BackfillTarget *t, const char *literal);
extern void iterator_limit_blocks(BatchIterator *it, BlockNumber start, BlockNumber end);
extern double iterator_fraction_done(BatchIterator *it);
extern double iterator_estimated_rows(BatchIterator *it);
extern char *iterator_describe_position(BatchIterator *it);
extern char *iterator_find_failing_row(BatchIterator *it, int sqlerrcode);
extern void iterator_set_hot_rounds(BatchIterator *it, int rounds);
extern bool iterator_round_pending(BatchIterator *it);
extern void iterator_free(BatchIterator *it);

/* backfill.c */
extern void commit_transaction(void);
extern bool run_main_pass(BackfillTarget *target, BatchIterator *it,
						  BackfillStats *stats, const BackfillOptions *opts);
extern void sleep_interruptibly(int ms);
extern void run_backfill(BackfillTarget *target, const BackfillOptions *opts);
typedef void (*JobBody) (BackfillJob *job, JobPosition *pos, void *arg);
extern void run_in_job(BackfillTarget *target, const BackfillOptions *opts, bool by_ctid,
					   double estimated_rows, JobBody body, void *arg);

/* locking.c */
typedef void (*LockedAction) (void *arg);
typedef void (*FailedAction) (ErrorData *edata, void *arg);
extern bool run_in_subtransaction(LockedAction action, void *arg, int timeout_ms,
								  const int *expected, int nexpected,
								  FailedAction on_error);
extern bool try_in_subtransaction(LockedAction action, void *arg, ErrorData **error);
extern void set_local_lock_timeout(int ms);
extern bool run_with_lock_timeout(int timeout_ms, LockedAction action, void *arg,
								  FailedAction on_error);

/* jobs.c */
extern BackfillJob *job_start(BackfillTarget *target, Oid procoid, bool by_ctid,
							  double estimated_rows, JobPosition *pos);
extern int64 job_id(BackfillJob *job);
extern void job_record_batch(BackfillJob *job, const char *phase, ArrayType *keys,
							 BlockNumber block, int64 filled, int64 scanned,
							 int64 batches);
extern void job_record_progress(BackfillJob *job, int64 filled, int64 scanned);
extern void job_lock_as_worker(Oid relid, AttrNumber attnum);
extern void job_finish(BackfillJob *job, const char *error);
extern void job_forget_position(BackfillJob *job);
extern void job_release(BackfillJob *job);
extern void job_insert_range(BackfillJob *job, int range_no, const char *start_key,
							 const char *end_key, BlockNumber start_block,
							 BlockNumber end_block);
extern void job_insert_shard_range(BackfillJob *job, int range_no, int64 shard_id);
extern int	job_load_ranges(BackfillJob *job, JobRange **ranges);
extern bool job_has_ranges(BackfillJob *job);
extern RangeRecorder *range_recorder(Oid nsp, int64 job_id, int range_no);
extern void range_record_batch(RangeRecorder *r, ArrayType *keys, BlockNumber block,
							   int64 filled);
extern void range_record_done(RangeRecorder *r);
extern char *describe_lock_holders(Oid relid);
/* builds an ALTER TABLE from the table's current name; conname may be unused */
typedef char *(*DdlBuilder) (BackfillTarget *target, const char *conname);
extern void run_exclusive_step(BackfillTarget *target, const char *procname,
							   const char *what, DdlBuilder build, const char *conname,
							   const LockPolicy *policy, double *held_ms);
typedef bool (*StepGuard) (void *arg);
extern bool run_guarded_exclusive_step(BackfillTarget *target, const char *procname,
									   const char *what, DdlBuilder build, const char *conname,
									   const LockPolicy *policy, double *held_ms,
									   StepGuard guard, void *guard_arg);

/* space.c */
extern void reuse_freed_space(BackfillTarget *target, BlockNumber start, BlockNumber end);
extern void prune_between_rounds(BackfillTarget *target, BlockNumber start, BlockNumber end);
extern void require_heap_for_ctid(BackfillTarget *target);
extern char *hot_update_blocker(BackfillTarget *target);

/* parallel.c */
extern bool run_parallel_main_pass(BackfillTarget *target, const BackfillOptions *opts,
								   BackfillStats *stats, bool by_ctid, BackfillJob *job,
								   bool resumed);
extern int	parallel_unfinished_ranges(BackfillJob *job);

/* citus.c */
typedef enum CitusTableKind
{
	CITUS_TABLE_NONE,			/* not a Citus table (or no Citus) */
	CITUS_TABLE_DISTRIBUTED,	/* hash-distributed or single-shard: per shard */
	CITUS_TABLE_REFERENCE,		/* a copy on every node: coordinator batches */
	CITUS_TABLE_OTHER			/* Citus local, append or range tables */
} CitusTableKind;
extern bool citus_is_loaded(void);
extern CitusTableKind citus_table_kind(Oid relid);
extern bool citus_backfill(BackfillTarget *target, const BackfillOptions *opts);
extern bool citus_estimate_rows(Oid relid, double *rows);
extern void citus_set_local_lock_timeout(int ms);
extern bool citus_wait_for_shard_lock_holders(BackfillTarget *target, int timeout_ms,
											  char **holders);

/* replicas.c */
extern void replica_lag_reset(void);
extern void replica_lag_note_commit(void);
extern void require_replica_visibility(void);
extern void wait_for_replicas(BackfillTarget *target, int limit_ms, int max_wait_ms,
							  double *waited_ms);

/* not_null.c */
extern int64 count_nulls(BackfillTarget *target);
extern bool validate_constraint(BackfillTarget *target, const char *conname, int violation);
extern void run_set_not_null(BackfillTarget *target, const LockPolicy *policy,
							 int drop_check);

/* not_null_native.c: false where NOT NULL cannot be NOT VALID (before 18) */
extern bool set_not_null_natively(BackfillTarget *target, const LockPolicy *policy);

#endif							/* SAFE_BACKFILL_H */

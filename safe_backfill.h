/*
 * safe_backfill.h
 *		The data every module shares: what a run fills (BackfillTarget),
 *		what the caller asked for (BackfillOptions), where a run stands
 *		(JobPosition, BackfillStats), and the constants of the lock key
 *		spaces.  Each module's functions are declared in its own header,
 *		src/<module>.h; see docs/internals.md for the layers.
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

/*
 * The version of the SQL objects (safe_backfill--<version>.sql) this library
 * works with: its tables, view and procedures.
 */
#define SAFE_BACKFILL_SQL_VERSION		"1.3"

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
/* DETACHED: held by the worker of a detached run; keys (database, job id >> 32, job id) */
#define SAFE_BACKFILL_DETACHED_LOCK_SPACE	0x5345

/* Sweeps that still find NULL rows before we give up and say why. */
#define SAFE_BACKFILL_MAX_SWEEPS		10
/* a batch that wrote nothing is recorded in the jobs table at most this often */
#define EMPTY_BATCH_RECORD_MS		1000

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
	char	   *op_ge;
} KeyColumn;

/*
 * What every statement of a run writes into the column: a constant, or an
 * expression computed for each row.  Set once, before the run, by value.c
 * (coerce_value_to_column) or expression.c (prepare_expression); read by the
 * statement builders and shipped to parallel workers.
 */
typedef struct WrittenValue
{
	/* the value, already in the column's type and checked once */
	Datum		value;

	/*
	 * Or, with expression => '...': its text as the caller gave it (for the
	 * jobs table and messages), checked by expression.c to be exactly one
	 * expression assignable to the column (value is then unused), and the
	 * tree analysed from it once: what every statement computes for each
	 * row, in the place SQL_EXPRESSION_PLACE of its text.
	 */
	char	   *expression;
	Node	   *tree;
	Oid			temp_relid;		/* a temporary table it reads, if any */
} WrittenValue;

/*
 * What a run does to the rows of its walk that need it: fill the column's
 * NULLs (safe_backfill: written says with what), or set columns of, or
 * delete, the rows that match a predicate (safe_update, safe_delete).  Set
 * once, before the run, by change.c; read by the statement builders.
 */
typedef enum ChangeKind
{
	CHANGE_FILL = 0,
	CHANGE_UPDATE,
	CHANGE_DELETE
} ChangeKind;

/* One "column = expression" of safe_update's set list, analysed. */
typedef struct SetColumn
{
	AttrNumber	attnum;
	char	   *name;
	Oid			typid;
	int32		typmod;
	/* the expression, coerced to the column's type; in SQL_SET_PLACE(i) */
	Node	   *tree;
} SetColumn;

typedef struct RowChange
{
	ChangeKind	kind;
	const char *procname;		/* safe_backfill, safe_update or safe_delete */
	char	   *set_text;		/* the caller's texts, for the jobs table */
	char	   *where_text;
	int			nset;
	SetColumn  *set;
	Node	   *where_tree;		/* boolean; NULL: every row (safe_update only) */
	bool		dry_run;		/* count the rows that match, change none */
} RowChange;

/*
 * What a run learns about its target as it goes; the resolved identity and
 * the written value do not change while it does.
 */
typedef struct TargetRunState
{
	int64		expression_nulls;	/* rows left NULL because the expression gave NULL */
	int64		matching_left;	/* safe_update/safe_delete: rows matching at the end, or -1 */
	int64		pages_pruned;	/* space.c: pages pruned behind the walk ... */
	uint64		free_recorded;	/* ... and the bytes they then had free */
	/* bumped by target.c when the table was renamed: statements built before are stale */
	int			generation;
	bool		said_no_space_reuse;	/* space.c: NOTICE given for a non-heap table */
	bool		said_horizon_held;	/* pass.c: NOTICE given for a long transaction */
} TargetRunState;

/*
 * One (table, column) pair, or for safe_update and safe_delete one table
 * (attnum 0, colname NULL): what was resolved and validated about it
 * (target.c: the relation by OID, the column, its primary key), what is
 * written into it (written), and what the run learns (run).  It lives in the
 * SPI procedure context, which survives our commits; nothing in it points
 * into relcache or syscache entries, which do not.
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
	bool		citus_table;	/* a Citus table: Citus plans its statements */

	AttrNumber	attnum;
	char	   *colname;
	Oid			atttypid;
	int32		atttypmod;
	bool		attnotnull;
	int16		typlen;			/* of the column's type */
	bool		typbyval;

	/* primary key, if any; nkeys == 0 means iterate by ctid ranges */
	int			nkeys;
	KeyColumn  *keys;
	char	   *key_op_schema;	/* quoted schema of the key's btree operators, or NULL */

	RowChange	change;
	WrittenValue written;
	TargetRunState run;
} BackfillTarget;

/*
 * reuse_lag of a run whose neighbours' batches run beside it (parallel
 * workers, Citus shards filled together on a node): their statements keep
 * its latest dead rows visible for about a batch.
 */
#define CONCURRENT_REUSE_LAG	2

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
	bool		round_waits;	/* a serial run waits for the horizon after each HOT
								 * round (safe_backfill.round_horizon_wait); a run
								 * with reuse_lag > 0 always does */
} BackfillOptions;

/*
 * Blocks whose rows a batch rewrote, to prune: [start, end) of the table
 * relid, or of every leaf of the target when relid is InvalidOid (a plain
 * table, or a partitioned one walked by block ranges, whose range is the
 * same in every leaf).
 */
typedef struct FreedBlocks
{
	Oid			relid;
	BlockNumber start;
	BlockNumber end;
} FreedBlocks;

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
	Datum	   *key_texts;		/* the last key done, nkeys of them, in canonical
								 * text: read by jobs.c only (job_saved_key) */
	int			nkeys;
	bool		has_block;
	int64		block;			/* next block of a ctid pass */
	int64		rows_done;
} JobPosition;

typedef struct RangeRecorder RangeRecorder;

/*
 * A parallel worker's ties to its leader, for the pass it runs over its
 * range: the leader's stop flag and the worker's progress slot, both in
 * shared memory, and the range's record in the jobs tables.  Kept apart
 * from BackfillOptions, which stays plain data (copied into shared memory).
 */
typedef struct WorkerLink
{
	volatile bool *stop;
	SharedProgress *progress;
	RangeRecorder *range;
} WorkerLink;

/* An unfinished range of an interrupted parallel run. */
typedef struct JobRange
{
	int			range_no;
	int64		shard_id;		/* Citus per-shard mode: the shard (else 0) */
	Datum	   *start_key;		/* the last key done, or NULL: from the start */
	Datum	   *end_key;		/* its last key, or NULL: to the end */
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
	int64		most_in_a_batch;	/* rows the fullest batch changed */
	int			sweeps;
	double		replica_wait_ms;	/* time spent waiting for standbys */
	double	   *batch_ms;		/* histogram of main-pass batch durations */
	int			ntimes;			/* batches counted in it */
	int			maxtimes;		/* its buckets */
} BackfillStats;

/*
 * What an earlier, unfinished run of the column leaves this one to do,
 * decided once for every path (backfill.c, decide_resume).
 */
typedef enum ResumeKind
{
	RESUME_NONE,				/* from the start of the table */
	RESUME_POSITION,			/* a serial main pass, after its saved key or block */
	RESUME_RANGES,				/* the unfinished ranges (or shards) it recorded */
	RESUME_SWEEP				/* its main pass was done: straight to the sweeps */
} ResumeKind;

typedef struct BatchIterator BatchIterator;

/*
 * One run of safe_backfill on a table: what it fills, how, and its totals.
 * The strategy that fills it keeps its own state in strategy_state.
 */
typedef struct RunContext
{
	BackfillTarget *target;
	const BackfillOptions *opts;
	BackfillStats stats;
	BatchIterator *it;			/* a single node's walk of the main pass */
	void	   *strategy_state;
} RunContext;

typedef struct BackfillJob BackfillJob;

/* a sweep that cannot tell how many rows it filled: count what is left */
#define SWEEP_FILLED_UNKNOWN	(-1)

/*
 * A way to fill the table: one session's serial pass (serial.c), parallel
 * workers (parallel.c), or each shard on its own node (citus.c).  backfill.c
 * chooses one and drives every run the same way: the job, the resume
 * decision, main_pass, then sweep_until_clean (pass.c) calling sweep until a
 * fresh count finds no NULL left, the job's end and the summary.  A new path
 * plugs in here without touching the others.
 */
typedef struct RunStrategy
{
	const char *ranges_noun;	/* what its recorded ranges are, for NOTICEs */
	bool		ranges_count_rows;	/* its ranges record the rows they filled */
	const char *sweeps_noun;	/* what one of its sweeps is, for errors */
	int			max_sweeps;		/* sweeps that still find NULLs before giving up */
	/* the main pass; false: it could not run this way and changed nothing */
	bool		(*main_pass) (RunContext *run, BackfillJob *job, ResumeKind resume);
	/* one sweep over what may still be NULL: rows filled, or SWEEP_FILLED_UNKNOWN */
	int64		(*sweep) (RunContext *run, BackfillJob *job, int sweep);
	/* the NOTICE at the end; NULL: the batches' summary (pass.c) */
	void		(*summary) (RunContext *run);
} RunStrategy;

/* Opaque objects and callbacks passed between modules. */
struct ParseState;

typedef void (*JobBody) (BackfillJob *job, JobPosition *pos, void *arg);

typedef void (*LockedAction) (void *arg);

typedef void (*FailedAction) (ErrorData *edata, void *arg);

/* builds an ALTER TABLE from the table's current name; conname may be unused */
typedef char *(*DdlBuilder) (BackfillTarget *target, const char *conname);

typedef bool (*StepGuard) (void *arg);

#endif							/* SAFE_BACKFILL_H */

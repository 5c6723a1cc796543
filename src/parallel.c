/*
 * parallel.c
 *		The main pass split across dynamic background workers.
 *
 * The leader (the backend running the CALL) cuts the key space into
 * contiguous ranges - primary-key quantiles of a sample of the table, or
 * block ranges for a table without a key - and starts background workers
 * that take the ranges in turn, each committing its own batches.
 *
 * A worker must write exactly what the caller's session would have written,
 * so it is given the caller's context the way PostgreSQL's own parallel
 * query gives it to its workers (src/backend/access/transam/parallel.c):
 * the libraries and every setting of the session (SerializeGUCState), its
 * login, session and current role and security context, its temporary
 * namespace (so search_path resolves the same names), and the value and the
 * range bounds as binary datums (datumSerialize) - never through a type's
 * text form, which depends on DateStyle, TimeZone, IntervalStyle,
 * extra_float_digits...
 *
 * Everything a worker reports - its error, whatever stage it fails in, and
 * its notices - goes through a message queue (shm_mq) of its own and is
 * raised again in the leader as it was raised (ThrowErrorData): the
 * caller's error is the worker's error, with its SQLSTATE.
 *
 * Workers die with the leader: a leader that leaves for any reason - error,
 * cancel, pg_terminate_backend - stops its workers and waits until the last
 * one has exited before its session releases the column's advisory lock.
 * Each worker also holds a second advisory tag of the column in share mode
 * for its life, which a new run takes exclusively after the column lock.
 *
 * The leader holds no snapshot while it waits (it would keep the workers
 * from pruning); about once a second it records the workers' progress in the
 * job row, in a short transaction of its own.  The sweeps that follow the
 * main pass are the leader's, as in a serial run.
 */
#include "safe_backfill.h"
#include "src/change.h"
#include "src/expression.h"
#include "src/iterate.h"
#include "src/jobs.h"
#include "src/keys.h"
#include "src/parallel.h"
#include "src/pass.h"
#include "src/serial.h"
#include "src/settings.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/xact.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#define MAX_WORKERS			64

/* the table of contents of the shared memory segment */
#define SB_PARALLEL_MAGIC	0x53424b31
#define KEY_SHARED			1
#define KEY_LIBRARIES		2
#define KEY_SETTINGS		3
#define KEY_VALUE			4
#define KEY_QUEUES			5
#define KEY_EXPRESSION		6	/* expression => text, or "" for a value */
#define KEY_EXPRESSION_TREE	7	/* its analysed tree (nodeToString), or "" */
#define KEY_CHANGE			8	/* safe_update's or safe_delete's change, or "" */
#define KEY_BOUNDS			100 /* + range index: that range's key bounds */

/* one queue per worker, as large as parallel query's error queues */
#define QUEUE_SIZE			16384

/*
 * Keys sampled to cut the key space: the keys of about this many blocks
 * (TABLESAMPLE SYSTEM), read again on a wider sample while there are fewer
 * keys than ranges (a table of mostly dead space).
 */
#define SAMPLE_BLOCKS		128

/* How often the leader records the workers' progress in the job row. */
#define PROGRESS_RECORD_MS	1000

typedef struct RangeSlot
{
	/* the range, set by the leader; range_no is its row in the job's ranges */
	int			range_no;
	bool		has_start;		/* keys: exclusive lower bound, in KEY_BOUNDS + i */
	bool		has_end;		/* keys: inclusive upper bound, after it */
	BlockNumber start_block;
	BlockNumber end_block;		/* InvalidBlockNumber: to the end */

	/* progress and outcome, set by the worker that takes it */
	SharedProgress progress;
	volatile int worker_pid;
	volatile bool started;
	volatile bool done;
} RangeSlot;

typedef struct ParallelShared
{
	/* who the workers are: the caller's session, exactly */
	Oid			dboid;
	Oid			authenticated_user;
	Oid			outer_user;		/* SET ROLE, or InvalidOid */
	bool		outer_is_superuser;
	Oid			current_user;
	int			sec_context;
	Oid			temp_namespace;
	Oid			temp_toast_namespace;

	/* what they fill */
	Oid			relid;
	AttrNumber	attnum;
	NameData	colname;
	bool		by_ctid;
	BackfillOptions opts;
	int64		job_id;
	Oid			jobs_namespace;
	double		estimated_rows; /* the leader's, so workers need not count again */

	volatile bool stop;			/* leader to workers: stop after this batch */
	volatile bool leader_gone;	/* the leader is exiting: do not start at all */
	pg_atomic_uint32 next_range;	/* the queue: workers take ranges in turn */
	int			nranges;
	RangeSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} ParallelShared;

/* A range as the leader plans it, before it goes to shared memory. */
typedef struct RangePlan
{
	int			range_no;
	Datum	   *start_key;		/* NULL: from the start */
	Datum	   *end_key;		/* NULL: to the end */
	BlockNumber start_block;
	BlockNumber end_block;
} RangePlan;

/* The leader's side of a running parallel pass. */
typedef struct ParallelRun
{
	dsm_segment *seg;
	ParallelShared *sh;
	int			nstarted;
	BackgroundWorkerHandle *handles[MAX_WORKERS];
	shm_mq_handle *queues[MAX_WORKERS];
	pid_t		pids[MAX_WORKERS];	/* last pid seen of each worker */
	ErrorData  *error;			/* the first error a worker raised */
	bool		terminated;		/* a worker was terminated by someone else */
	int			failed_worker;
	/* what read_worker_messages parses, reset after each call */
	MemoryContext messages_cxt;
} ParallelRun;

PGDLLEXPORT void safe_backfill_worker_main(Datum main_arg);

/* The run whose workers must be gone before this backend releases its locks. */
static ParallelRun *volatile active_run = NULL;
static bool exit_callback_registered = false;

/* ---------------------------------------------------------------------
 * Cutting the table into ranges
 * --------------------------------------------------------------------- */


/*
 * Read the sorted keys of a sample of the table's blocks: about
 * SAMPLE_BLOCKS of them, more while there are fewer keys than wanted.
 * Decided from the table as it is, not from statistics that may be stale.
 */
static uint64
sample_keys(BackfillTarget *target, int wanted)
{
	BlockNumber blocks = table_block_count(target->relid);
	float4		percent = blocks <= SAMPLE_BLOCKS ? 100.0 : 100.0 * SAMPLE_BLOCKS / blocks;
	char	   *sql = sql_key_sample(target);

	for (;;)
	{
		Oid			types[1] = {FLOAT4OID};
		Datum		args[1] = {Float4GetDatum(percent)};

		if (SPI_execute_with_args(sql, 1, types, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "safe_backfill: sampling the keys failed");
		if (SPI_processed >= (uint64) wanted || percent >= 100.0)
			return SPI_processed;
		SPI_freetuptable(SPI_tuptable);
		percent = Min(100.0, percent * 8);
	}
}

/*
 * Primary-key quantiles of the sample; returns how many ranges, at most
 * wanted.  Fewer when the table has fewer rows than ranges (the sample is
 * then the whole table), with a NOTICE saying so.
 */
static int
cut_key_ranges(RangePlan *plan, int wanted, BackfillTarget *target)
{
	uint64		m = sample_keys(target, wanted);
	int			n = (int) Min((uint64) wanted, m);
	int			i;

	if (n < wanted)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: the table has only " UINT64_FORMAT " rows, %s",
						target->display, m,
						n <= 1 ? "too few to split across workers; running in this session" :
						psprintf("splitting it into %d ranges instead of %d", n, wanted))));
	for (i = 0; i < n; i++)
	{
		plan[i].range_no = i + 1;
		plan[i].end_key = NULL;
		plan[i].start_key = i > 0 ? plan[i - 1].end_key : NULL;
		if (i < n - 1)
			plan[i].end_key = key_from_tuple(target, SPI_tuptable->vals[(uint64) (i + 1) * m / n],
											 SPI_tuptable->tupdesc, NULL);
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

static void
cut_block_ranges(RangePlan *plan, int n, BackfillTarget *target)
{
	BlockNumber blocks = table_block_count(target->relid);
	int			i;

	for (i = 0; i < n; i++)
	{
		plan[i].range_no = i + 1;
		plan[i].start_block = (BlockNumber) ((uint64) blocks * i / n);
		plan[i].end_block = i < n - 1 ?
			(BlockNumber) ((uint64) blocks * (i + 1) / n) : InvalidBlockNumber;
	}
}

/* Record the ranges of a new run, so an interrupted run resumes each one. */
static void
save_ranges(RangePlan *plan, int n, BackfillTarget *target, BackfillJob *job)
{
	for (int i = 0; i < n; i++)
		job_insert_range(job, plan[i].range_no, plan[i].start_key, plan[i].end_key,
						 plan[i].start_block, plan[i].end_block);
}

/* The unfinished ranges of an interrupted run, from where each stopped. */
static void
load_ranges(RangePlan *plan, JobRange *ranges, int n, BackfillTarget *target,
			bool by_ctid)
{
	for (int i = 0; i < n; i++)
	{
		plan[i].range_no = ranges[i].range_no;
		if (!by_ctid)
		{
			plan[i].start_key = ranges[i].start_key;
			plan[i].end_key = ranges[i].end_key;
		}
		plan[i].start_block = ranges[i].next_block;
		plan[i].end_block = ranges[i].end_block;
	}
}

/* ---------------------------------------------------------------------
 * The shared memory segment
 * --------------------------------------------------------------------- */

static Size
key_space(BackfillTarget *target, Datum *key)
{
	Size		size = 0;

	for (int i = 0; key != NULL && i < target->nkeys; i++)
		size = add_size(size, datumEstimateSpace(key[i], false, target->keys[i].typbyval,
												 target->keys[i].typlen));
	return size;
}

static void
serialize_key(BackfillTarget *target, Datum *key, char **ptr)
{
	for (int i = 0; key != NULL && i < target->nkeys; i++)
		datumSerialize(key[i], false, target->keys[i].typbyval, target->keys[i].typlen, ptr);
}

/* Everything a worker needs, with one message queue per worker. */
static dsm_segment *
create_shared(BackfillTarget *target, const BackfillOptions *opts, bool by_ctid,
			  RangePlan *plan, int nranges, int nworkers, ParallelRun *run)
{
	Size		shared_size = add_size(offsetof(ParallelShared, slots),
									   mul_size(sizeof(RangeSlot), nranges));
	Size		libraries_size = EstimateLibraryStateSpace();
	Size		settings_size = EstimateGUCStateSpace();
	/* an expression run has no value: a NULL datum stands for it */
	bool		no_value = target->written.expression != NULL;
	Size		value_size = datumEstimateSpace(target->written.value, no_value, target->typbyval,
												target->typlen);
	const char *expression = target->written.expression ? target->written.expression : "";
	Size		expression_size = strlen(expression) + 1;
	char	   *tree = target->written.tree ? nodeToString(target->written.tree) : "";
	Size		tree_size = strlen(tree) + 1;
	char	   *change = target->change.kind != CHANGE_FILL ? serialize_row_change(target) : "";
	Size		change_size = strlen(change) + 1;
	Size		queues_size = mul_size(QUEUE_SIZE, nworkers);
	shm_toc_estimator e;
	shm_toc    *toc;
	dsm_segment *seg;
	ParallelShared *sh;
	char	   *space;
	int			i;

	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, shared_size);
	shm_toc_estimate_chunk(&e, libraries_size);
	shm_toc_estimate_chunk(&e, settings_size);
	shm_toc_estimate_chunk(&e, value_size);
	shm_toc_estimate_chunk(&e, expression_size);
	shm_toc_estimate_chunk(&e, tree_size);
	shm_toc_estimate_chunk(&e, change_size);
	shm_toc_estimate_chunk(&e, queues_size);
	for (i = 0; i < nranges; i++)
		shm_toc_estimate_chunk(&e, add_size(key_space(target, plan[i].start_key),
											key_space(target, plan[i].end_key)));
	shm_toc_estimate_keys(&e, 8 + nranges);

	seg = dsm_create(shm_toc_estimate(&e), 0);
	/* the mapping must outlive the transaction we are in */
	dsm_pin_mapping(seg);
	toc = shm_toc_create(SB_PARALLEL_MAGIC, dsm_segment_address(seg), shm_toc_estimate(&e));

	sh = shm_toc_allocate(toc, shared_size);
	memset(sh, 0, shared_size);
	sh->dboid = MyDatabaseId;
	sh->authenticated_user = GetAuthenticatedUserId();
	sh->outer_user = GetCurrentRoleId();
	sh->outer_is_superuser = superuser_arg(GetOuterUserId());
	GetUserIdAndSecContext(&sh->current_user, &sh->sec_context);
	GetTempNamespaceState(&sh->temp_namespace, &sh->temp_toast_namespace);
	sh->relid = target->relid;
	sh->attnum = target->attnum;
	if (target->colname)
		namestrcpy(&sh->colname, target->colname);
	sh->by_ctid = by_ctid;
	sh->opts = *opts;
	sh->nranges = nranges;
	pg_atomic_init_u32(&sh->next_range, 0);
	shm_toc_insert(toc, KEY_SHARED, sh);

	space = shm_toc_allocate(toc, libraries_size);
	SerializeLibraryState(libraries_size, space);
	shm_toc_insert(toc, KEY_LIBRARIES, space);

	space = shm_toc_allocate(toc, settings_size);
	SerializeGUCState(settings_size, space);
	shm_toc_insert(toc, KEY_SETTINGS, space);

	space = shm_toc_allocate(toc, value_size);
	shm_toc_insert(toc, KEY_VALUE, space);
	datumSerialize(target->written.value, no_value, target->typbyval, target->typlen, &space);

	/*
	 * The expression's text, for messages, and its tree, which the workers
	 * run: analysing the text again there could find other functions,
	 * created meanwhile, under the same names.
	 */
	space = shm_toc_allocate(toc, expression_size);
	memcpy(space, expression, expression_size);
	shm_toc_insert(toc, KEY_EXPRESSION, space);
	space = shm_toc_allocate(toc, tree_size);
	memcpy(space, tree, tree_size);
	shm_toc_insert(toc, KEY_EXPRESSION_TREE, space);
	space = shm_toc_allocate(toc, change_size);
	memcpy(space, change, change_size);
	shm_toc_insert(toc, KEY_CHANGE, space);

	for (i = 0; i < nranges; i++)
	{
		RangeSlot  *slot = &sh->slots[i];

		slot->range_no = plan[i].range_no;
		slot->has_start = plan[i].start_key != NULL;
		slot->has_end = plan[i].end_key != NULL;
		slot->start_block = plan[i].start_block;
		slot->end_block = plan[i].end_block;
		space = shm_toc_allocate(toc, add_size(key_space(target, plan[i].start_key),
											   key_space(target, plan[i].end_key)));
		shm_toc_insert(toc, KEY_BOUNDS + i, space);
		serialize_key(target, plan[i].start_key, &space);
		serialize_key(target, plan[i].end_key, &space);
	}

	space = shm_toc_allocate(toc, queues_size);
	shm_toc_insert(toc, KEY_QUEUES, space);
	for (i = 0; i < nworkers; i++)
	{
		shm_mq	   *mq = shm_mq_create(space + (Size) i * QUEUE_SIZE, QUEUE_SIZE);

		shm_mq_set_receiver(mq, MyProc);
		run->queues[i] = shm_mq_attach(mq, seg, NULL);
	}
	run->seg = seg;
	run->sh = sh;
	return seg;
}

/* ---------------------------------------------------------------------
 * The leader
 * --------------------------------------------------------------------- */

static bool
start_worker(ParallelRun *run, int workerno)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "safe_backfill");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "safe_backfill_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "safe_backfill worker %d for PID %d",
			 workerno + 1, MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "safe_backfill worker");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(run->seg));
	memcpy(worker.bgw_extra, &workerno, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &run->handles[workerno]))
		return false;
	/* a worker that never starts counts as detached from its queue */
	shm_mq_set_handle(run->queues[workerno], run->handles[workerno]);
	return true;
}

/*
 * Throw away what the workers sent: a worker blocked on a full queue (a
 * trigger raising a notice per row) must be able to reach its next
 * interrupt check while we wait for it to stop.
 */
static void
discard_worker_messages(ParallelRun *run)
{
	for (int i = 0; i < run->nstarted; i++)
	{
		Size		nbytes;
		void	   *data;

		while (run->queues[i] != NULL &&
			   shm_mq_receive(run->queues[i], &nbytes, &data, true) == SHM_MQ_SUCCESS)
			;
	}
}

static bool
worker_stopped(ParallelRun *run, int i)
{
	pid_t		pid;
	BgwHandleStatus status = GetBackgroundWorkerPid(run->handles[i], &pid);

	if (status == BGWH_STARTED)
		run->pids[i] = pid;
	return status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED;
}

/*
 * Stop every worker and wait until the last one has exited.  They are
 * terminated, as parallel query terminates its workers: the batch each one
 * is running rolls back, so a worker waiting for row locks cannot keep us
 * waiting.  Interrupts are held: a second cancel must not return before the
 * workers are gone, or the column lock would be released while they still
 * write.  leader_exiting: the workers that have not started yet must not.
 */
static void
stop_workers(ParallelRun *run, bool leader_exiting)
{
	int			i;
	bool		all_stopped;

	HOLD_INTERRUPTS();
	run->sh->stop = true;
	if (leader_exiting)
		run->sh->leader_gone = true;
	pg_memory_barrier();
	for (i = 0; i < run->nstarted; i++)
		TerminateBackgroundWorker(run->handles[i]);
	for (;;)
	{
		all_stopped = true;
		for (i = 0; i < run->nstarted; i++)
			if (!worker_stopped(run, i))
				all_stopped = false;
		if (all_stopped)
			break;
		discard_worker_messages(run);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	RESUME_INTERRUPTS();
}

/*
 * The leader is exiting (pg_terminate_backend, a FATAL error): this runs
 * before the session releases its locks, so the column stays locked until
 * the last worker is gone.
 */
static void
stop_workers_at_exit(int code, Datum arg)
{
	ParallelRun *run = active_run;

	if (run == NULL)
		return;
	active_run = NULL;
	stop_workers(run, true);
}

static void
finish_run(ParallelRun *run)
{
	active_run = NULL;
	if (run->messages_cxt)
		MemoryContextDelete(run->messages_cxt);
	run->messages_cxt = NULL;
	for (int i = 0; i < run->nstarted; i++)
		if (run->queues[i] != NULL)
			shm_mq_detach(run->queues[i]);
	dsm_detach(run->seg);
	run->seg = NULL;
}

/* A worker is gone, and a range it had taken is unfinished: it failed or died. */
static bool
range_abandoned(ParallelShared *sh, pid_t gone)
{
	for (int i = 0; i < sh->nranges; i++)
		if (sh->slots[i].started && !sh->slots[i].done && sh->slots[i].worker_pid == gone)
			return true;
	return false;
}

static bool
all_ranges_done(ParallelShared *sh)
{
	for (int i = 0; i < sh->nranges; i++)
		if (!sh->slots[i].done)
			return false;
	return true;
}

/*
 * The first error a worker raised, parsed again from its message in the
 * run's own memory: it is raised once every worker has stopped, long after
 * the messages' context was reset.
 */
static ErrorData *
keep_worker_error(ParallelRun *run, StringInfo msg)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(run));
	ErrorData  *edata = palloc0(sizeof(ErrorData));

	msg->cursor = 1;			/* after the message type */
	pq_parse_errornotice(msg, edata);
	/* the death of a worker is no reason for the leader's */
	edata->elevel = ERROR;
	MemoryContextSwitchTo(old);
	return edata;
}

/*
 * One message from a worker: an error is kept to be raised once every
 * worker has stopped; a notice is shown now, as the worker raised it.
 * Parsed in the messages' context, which read_worker_messages resets.
 */
static void
handle_worker_message(ParallelRun *run, int workerno, StringInfo msg)
{
	char		msgtype = pq_getmsgbyte(msg);
	ErrorData	edata;

	if (msgtype != 'E' && msgtype != 'N')
		return;					/* nothing else is sent */
	pq_parse_errornotice(msg, &edata);
	if (edata.elevel < ERROR)
	{
		ThrowErrorData(&edata);
		return;
	}
	/* someone terminated the worker: say what that means for the run */
	if (edata.elevel >= FATAL && edata.sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
	{
		run->terminated = true;
		run->sh->stop = true;
		return;
	}
	if (run->error == NULL)
	{
		run->error = keep_worker_error(run, msg);
		run->failed_worker = workerno;
	}
	run->sh->stop = true;		/* the others stop after their current batch */
}

/*
 * Relay what the workers sent.  Each message's parsed fields are garbage
 * once it was relayed: parse them in a context of their own, reset at the
 * end (as core's HandleParallelMessages does), or the leader would keep
 * ~700 bytes per NOTICE until the CALL ends - 200 MB for a trigger's
 * notice per row of 300,000 rows.  An error on the way (a cancel in the
 * relayed notice's interrupt check) leaves this context current: the
 * caller's PG_CATCH switches back before finish_run deletes it.
 */
static void
read_worker_messages(ParallelRun *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->messages_cxt);

	for (int i = 0; i < run->nstarted; i++)
	{
		while (run->queues[i] != NULL)
		{
			Size		nbytes;
			void	   *data;
			shm_mq_result res = shm_mq_receive(run->queues[i], &nbytes, &data, true);
			StringInfoData msg;

			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
			{
				shm_mq_detach(run->queues[i]);
				run->queues[i] = NULL;
				break;
			}
			initStringInfo(&msg);
			appendBinaryStringInfo(&msg, data, nbytes);
			handle_worker_message(run, i, &msg);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(run->messages_cxt);
}

static void
sum_progress(ParallelShared *sh, BackfillStats *stats)
{
	stats->rows_filled = stats->rows_scanned = stats->batches = 0;
	for (int i = 0; i < sh->nranges; i++)
	{
		stats->rows_filled += sh->slots[i].progress.rows_filled;
		stats->rows_scanned += sh->slots[i].progress.rows_scanned;
		stats->batches += sh->slots[i].progress.batches;
	}
}

static void
report_parallel_progress(BackfillTarget *target, BackfillStats *stats, int nworkers)
{
	if (progress_line_due(stats))
		report_main_progress(target, stats,
							 stats->estimated_rows > 0 ?
							 Min(1.0, stats->rows_scanned / stats->estimated_rows) : 0,
							 stats->estimated_rows, nworkers);
}

/* What the job row has been told so far during this pass. */
typedef struct RecordedProgress
{
	TimestampTz last;
	int64		filled;
	int64		scanned;
} RecordedProgress;

/*
 * About once a second, in a short transaction of its own: the job row counts
 * what the ranges committed, so the view moves.
 */
static void
record_progress(BackfillJob *job, BackfillStats *stats, RecordedProgress *rec)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(rec->last, now, PROGRESS_RECORD_MS) ||
		(stats->rows_filled == rec->filled && stats->rows_scanned == rec->scanned))
		return;
	rec->last = now;
	(void) job_count_ranges(job);
	rec->filled = stats->rows_filled;
	rec->scanned = stats->rows_scanned;
	commit_transaction();
}

/*
 * Wait until every worker has stopped, relaying their messages and their
 * progress; true if every range was filled.  A worker that stops while a
 * range it took is unfinished has failed or died: the others then stop after
 * their current batch.
 */
static bool
wait_for_workers(ParallelRun *run, BackfillTarget *target, BackfillStats *stats,
				 BackfillJob *job, RecordedProgress *rec)
{
	for (;;)
	{
		int			running = 0;

		for (int i = 0; i < run->nstarted; i++)
		{
			if (!worker_stopped(run, i))
				running++;
			else if (range_abandoned(run->sh, run->pids[i]))
				run->sh->stop = true;
		}
		read_worker_messages(run);
		sum_progress(run->sh, stats);
		if (running == 0)
			break;
		report_parallel_progress(target, stats, run->nstarted);
		record_progress(job, stats, rec);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* what the workers sent just before they exited */
	read_worker_messages(run);
	return all_ranges_done(run->sh);
}

/*
 * Every worker has stopped and some range is unfinished: raise the error a
 * worker raised, as it raised it, or say that one was stopped from outside.
 */
static void
raise_worker_error(ParallelRun *run, BackfillTarget *target, BackfillStats *stats)
{
	ErrorData  *edata = run->error;
	int			nranges = run->sh->nranges;
	int			nstarted = run->nstarted;

	finish_run(run);
	if (edata != NULL)
	{
		char	   *where = psprintf("safe_backfill: %s: parallel worker %d of %d (%d ranges); " INT64_FORMAT " rows filled and committed by all workers",
									 target->display, run->failed_worker + 1, nstarted,
									 nranges, stats->rows_filled);

		edata->context = edata->context ? psprintf("%s\n%s", edata->context, where) : where;
		ThrowErrorData(edata);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("safe_backfill: %s: a parallel worker stopped before finishing its range",
					target->display),
			 errdetail(INT64_FORMAT " rows were filled and committed; nothing is half-written.",
					   stats->rows_filled),
			 run->terminated ?
			 errhint("A worker was terminated. Call safe_backfill again: it fills the rows still NULL.") :
			 errhint("Call safe_backfill again: it fills the rows still NULL.")));
}

/*
 * Whether workers can do this table's work in their own sessions; if not,
 * say why.  A temporary table lives in this session's local buffers, which
 * no other backend can read: the table filled, or one its expression reads.
 */
static bool
workers_can_reach(BackfillTarget *target)
{
	if (get_rel_persistence(target->relid) == RELPERSISTENCE_TEMP)
	{
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: a temporary table is visible to this session only; running in this session without workers",
						target->display)));
		return false;
	}
	if (OidIsValid(target->written.temp_relid))
	{
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: the expression reads temporary relation %s, visible to this session only; running in this session without workers",
						target->display,
						quote_identifier(get_rel_name(target->written.temp_relid)))));
		return false;
	}
	return true;
}

/* Start up to wanted workers; how many started, with a NOTICE if fewer. */
static int
start_workers(ParallelRun *run, BackfillTarget *target, int wanted)
{
	while (run->nstarted < wanted && start_worker(run, run->nstarted))
		run->nstarted++;
	if (run->nstarted == 0)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: no background worker slot is free (max_worker_processes = %d); running in this session",
						target->display, max_worker_processes)));
	else if (run->nstarted < wanted)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: only %d of %d background workers could start (max_worker_processes = %d); they take the %d ranges in turn",
						target->display, run->nstarted, wanted, max_worker_processes,
						run->sh->nranges)));
	return run->nstarted;
}

/*
 * Run the main pass with up to opts->workers workers, taking the ranges in
 * turn.  A new run cuts the table into opts->workers ranges; a resumed one
 * continues the ranges its job left unfinished.  Returns false, having
 * changed nothing, when it cannot run in parallel (a temporary table, no
 * worker slot free, a table with fewer rows than two ranges); the caller then
 * runs it serially.
 */
static bool
run_parallel_main_pass(BackfillTarget *target, const BackfillOptions *opts,
					   BackfillStats *stats, bool by_ctid, BackfillJob *job,
					   bool resumed)
{
	JobRange   *unfinished = NULL;
	int			nranges;
	int			wanted;
	RangePlan  *plan;
	ParallelRun *run;
	RecordedProgress rec = {0};
	bool		complete = false;

	if (!workers_can_reach(target))
		return false;
	nranges = resumed ? job_load_ranges(job, &unfinished) : opts->workers;
	if (nranges == 0)
		return resumed;			/* every range of the resumed run was done */
	nranges = Min(nranges, MAX_WORKERS);
	plan = palloc0(sizeof(RangePlan) * nranges);
	if (resumed)
		load_ranges(plan, unfinished, nranges, target, by_ctid);
	else if (by_ctid)
		cut_block_ranges(plan, nranges, target);
	else if ((nranges = cut_key_ranges(plan, nranges, target)) <= 1)
		return false;
	wanted = Min(nranges, Max(1, opts->workers));
	if (!resumed)
	{
		save_ranges(plan, nranges, target, job);
		job_ranges_take_counts(job);
	}

	run = palloc0(sizeof(ParallelRun));
	run->messages_cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "safe_backfill worker messages",
											  ALLOCSET_DEFAULT_SIZES);
	(void) create_shared(target, opts, by_ctid, plan, nranges, wanted, run);
	run->sh->job_id = job_id(job);
	run->sh->estimated_rows = stats->estimated_rows;
	run->sh->jobs_namespace = get_func_namespace(opts->procoid);

	/* nothing of ours may hold back the pruning of the workers' dead rows */
	commit_transaction();

	if (!exit_callback_registered)
	{
		before_shmem_exit(stop_workers_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	active_run = run;
	PG_TRY();
	{
		if (start_workers(run, target, wanted) > 0)
			complete = wait_for_workers(run, target, stats, job, &rec);
	}
	PG_CATCH();
	{
		/* out of the messages' context, which finish_run deletes */
		MemoryContextSwitchTo(GetMemoryChunkContext(run));
		/* cancelled, or our own error: every worker stops now */
		active_run = NULL;
		stop_workers(run, false);
		finish_run(run);
		PG_RE_THROW();
	}
	PG_END_TRY();
	active_run = NULL;

	if (run->nstarted == 0)
	{
		finish_run(run);
		job_drop_ranges(job);
		commit_transaction();
		return false;
	}
	if (!complete)
		raise_worker_error(run, target, stats);
	finish_run(run);
	return true;
}

/* ---------------------------------------------------------------------
 * A worker
 * --------------------------------------------------------------------- */

static Datum *
restore_key(BackfillTarget *target, char **ptr)
{
	Datum	   *key = palloc(sizeof(Datum) * target->nkeys);

	for (int i = 0; i < target->nkeys; i++)
	{
		bool		isnull;

		key[i] = datumRestore(ptr, &isnull);
	}
	return key;
}

static BatchIterator *
worker_iterator(ParallelShared *sh, shm_toc *toc, int r, BackfillTarget *target)
{
	RangeSlot  *slot = &sh->slots[r];
	BackfillOptions *opts = &sh->opts;
	double		rows = sh->estimated_rows;
	BatchIterator *it;
	char	   *bounds;

	if (sh->by_ctid)
	{
		it = iterator_create_ctid(target, opts->batch_size, rows);
		iterator_limit_blocks(it, slot->start_block, slot->end_block);
		return it;
	}
	it = iterator_create_keyset(target, opts->batch_size, rows);
	bounds = shm_toc_lookup(toc, KEY_BOUNDS + r, false);
	if (slot->has_start)
		iterator_start_after_key(it, restore_key(target, &bounds));
	if (slot->has_end)
		iterator_limit_keys(it, restore_key(target, &bounds));
	return it;
}

/* Fill one range; true if filled to its end, false if the leader said stop. */
static bool
fill_range(ParallelShared *sh, shm_toc *toc, int r, BackfillTarget *target)
{
	RangeSlot  *slot = &sh->slots[r];
	BackfillStats stats = {0};
	BackfillOptions opts = sh->opts;
	WorkerLink	link;
	BatchIterator *it;
	RangeRecorder *range;
	bool		completed;

	PushActiveSnapshot(GetTransactionSnapshot());
	it = worker_iterator(sh, toc, r, target);
	range = range_recorder(target, sh->jobs_namespace, sh->job_id, slot->range_no);
	PopActiveSnapshot();

	stats.started = stats.last_report = GetCurrentTimestamp();
	link.stop = &sh->stop;
	link.progress = &slot->progress;
	link.range = range;
	opts.workers = 1;
	/* the other workers' running batches keep our latest dead rows visible */
	opts.reuse_lag = CONCURRENT_REUSE_LAG;
	completed = run_main_pass(target, it, &stats, &opts, &link);
	if (completed)
		range_record_done(range);
	commit_transaction();
	iterator_free(it);
	return completed;
}

/* Take ranges from the queue until none is left or the leader says stop. */
static void
worker_fill_ranges(ParallelShared *sh, shm_toc *toc)
{
	BackfillTarget *target;
	char	   *value = shm_toc_lookup(toc, KEY_VALUE, false);
	char	   *expression = shm_toc_lookup(toc, KEY_EXPRESSION, false);
	char	   *tree = shm_toc_lookup(toc, KEY_EXPRESSION_TREE, false);
	char	   *change = shm_toc_lookup(toc, KEY_CHANGE, false);
	bool		isnull;
	uint32		r;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill worker: SPI_connect_ext failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	/* safe_update and safe_delete have no column (attnum 0) */
	target = resolve_target(sh->relid, sh->attnum != 0 ? NameStr(sh->colname) : NULL);
	if (change[0] != '\0')
		restore_row_change(target, change);
	check_backfill_privileges(target);
	/* the leader's value, already in the column's type and checked */
	target->written.value = datumRestore(&value, &isnull);
	/* or the tree of its expression, analysed and checked by the leader */
	if (expression[0] != '\0')
		use_expression_tree(target, expression, stringToNode(tree));
	PopActiveSnapshot();

	while (!sh->stop &&
		   (r = pg_atomic_fetch_add_u32(&sh->next_range, 1)) < (uint32) sh->nranges)
	{
		RangeSlot  *slot = &sh->slots[r];

		slot->worker_pid = MyProcPid;
		pg_write_barrier();
		slot->started = true;
		if (fill_range(sh, toc, r, target))
		{
			pg_write_barrier();
			slot->done = true;
		}
	}
	SPI_finish();
}

/*
 * A worker has the caller's temporary namespace, so that names resolve as
 * in the caller's session, but not the caller's temporary tables: their
 * rows are in the caller's local buffers, and the worker looks for their
 * files under its own backend ID, which finds none.  The expression's
 * analysis sees the temporary tables it reads itself (the run then stays in
 * the caller's session), not those a function it calls reads: such a read
 * fails with "could not open file" in the worker.  Say what it means.
 */
static void
explain_missing_file(ParallelShared *sh, MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	if (edata->sqlerrcode != ERRCODE_UNDEFINED_FILE || !OidIsValid(sh->temp_namespace))
	{
		FreeErrorData(edata);
		return;
	}
	FlushErrorState();
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("safe_backfill: %s.%s: a parallel worker cannot read the caller's temporary tables",
					quote_identifier(get_rel_name(sh->relid)),
					quote_identifier(NameStr(sh->colname))),
			 errdetail("The worker failed with: %s. A function the expression calls probably reads a temporary table, whose rows only the caller's session sees. Batches committed before stay.",
					   edata->message),
			 errhint("Call safe_backfill again with workers => 1: the run then goes on in the caller's session.")));
}

/*
 * Become the caller's session, in the order parallel query's workers do
 * (ParallelWorkerMain): connect as the role that logged in, load the
 * libraries it had loaded (they may define settings), restore every setting
 * inside a transaction, then the roles, the security context and the
 * temporary namespace.
 */
static void
become_caller(ParallelShared *sh, shm_toc *toc)
{
	BackgroundWorkerInitializeConnectionByOid(sh->dboid, sh->authenticated_user, 0);
	/* what we send goes to the leader, which expects the database encoding */
	SetClientEncoding(GetDatabaseEncoding());

	StartTransactionCommand();
	RestoreLibraryState(shm_toc_lookup(toc, KEY_LIBRARIES, false));
	RestoreGUCState(shm_toc_lookup(toc, KEY_SETTINGS, false));
	CommitTransactionCommand();
	/* restoring client_encoding changed it back: messages still go to the leader */
	SetClientEncoding(GetDatabaseEncoding());
	/* the leader reports the progress of all workers */
	SetConfigOption("safe_backfill.progress_interval", "0", PGC_USERSET, PGC_S_SESSION);

	SetCurrentRoleId(sh->outer_user, sh->outer_is_superuser);
	SetUserIdAndSecContext(sh->current_user, sh->sec_context);
	SetTempNamespaceState(sh->temp_namespace, sh->temp_toast_namespace);
}

void
safe_backfill_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	shm_toc    *toc;
	ParallelShared *sh;
	shm_mq	   *mq;
	int			workerno;
	Portal		portal;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&workerno, MyBgworkerEntry->bgw_extra, sizeof(int));
	CurrentMemoryContext = AllocSetContextCreate(TopMemoryContext, "safe_backfill worker",
												 ALLOCSET_DEFAULT_SIZES);
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill worker: the leader is gone")));
	toc = shm_toc_attach(SB_PARALLEL_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill worker: invalid shared memory segment")));
	sh = shm_toc_lookup(toc, KEY_SHARED, false);

	/* from here on, every error and notice goes to the leader */
	mq = (shm_mq *) ((char *) shm_toc_lookup(toc, KEY_QUEUES, false) +
					 (Size) workerno * QUEUE_SIZE);
	shm_mq_set_sender(mq, MyProc);
	pq_redirect_to_shm_mq(seg, shm_mq_attach(mq, seg, NULL));

	become_caller(sh, toc);
	pgstat_report_activity(STATE_RUNNING, "safe_backfill worker");

	StartTransactionCommand();

	/*
	 * Mark the column as written by us until we exit, then look whether the
	 * leader is still there: it sets leader_gone before its session releases
	 * the column lock, so a new run that got past our tag finds us gone.
	 */
	job_lock_as_worker(sh->relid, sh->attnum);
	pg_memory_barrier();
	if (sh->leader_gone)
		proc_exit(0);

	/*
	 * A CALL runs inside an active portal, which survives the procedure's
	 * commits and gives SPI the snapshot each statement needs; a worker has
	 * none, so it makes one, like the top level of a backend would.
	 */
	portal = CreatePortal("safe_backfill worker", true, true);
	portal->status = PORTAL_READY;
	MarkPortalActive(portal);
	ActivePortal = portal;
	PortalContext = portal->portalContext;
	PG_TRY();
	{
		worker_fill_ranges(sh, toc);
	}
	PG_CATCH();
	{
		explain_missing_file(sh, TopTransactionContext);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MarkPortalDone(portal);
	ActivePortal = NULL;
	CommitTransactionCommand();

	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/*
 * The parallel strategy: the main pass split across workers (from the
 * unfinished ranges when the run resumes them); when it cannot run in
 * parallel, this session walks the table serially.  Its sweeps are the
 * leader's, as in a serial run.
 */
static bool
parallel_main_pass(RunContext *run, BackfillJob *job, ResumeKind resume)
{
	if (!run_parallel_main_pass(run->target, run->opts, &run->stats,
								iterator_by_ctid(run->it), job, resume == RESUME_RANGES))
		return serial_strategy.main_pass(run, job, RESUME_NONE);

	/*
	 * the workers recorded their ranges: the job counts what they committed,
	 * and the pass is done
	 */
	(void) job_count_ranges(job);
	job_record_batch(job, "sweep", NULL, InvalidBlockNumber, 0, 0, 0);
	commit_transaction();
	return true;
}

const RunStrategy parallel_strategy = {
	.ranges_noun = "parallel ranges",
	.ranges_count_rows = true,
	.sweeps_noun = "sweeps over the table",
	.max_sweeps = SAFE_BACKFILL_MAX_SWEEPS,
	.main_pass = parallel_main_pass,
	.sweep = serial_sweep,
	.summary = NULL,
};

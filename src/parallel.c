/*
 * parallel.c
 *		The main pass split across dynamic background workers.
 *
 * The leader (the backend running the CALL) cuts the key space into
 * contiguous ranges - primary-key quantiles, or block ranges for a table
 * without one - and starts one background worker per range, connected to the
 * same database as the caller's role.  Each worker resolves and checks the
 * target again (with its own privileges, which are the caller's), then runs
 * the ordinary batch loop over its range, committing its own batches.  The
 * leader holds no snapshot while it waits (it would keep the workers from
 * pruning), relays progress, and re-raises the first error a worker hit.
 * The sweeps that follow are the leader's, as in a serial run.
 */
#include "safe_backfill.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/timestamp.h"

#define MAX_WORKERS		64
#define KEY_TEXT_LEN	1024
#define ERROR_TEXT_LEN	1024

typedef struct WorkerSlot
{
	/* the range, set by the leader; range_no is its row in the job's ranges */
	int			range_no;
	bool		has_start;		/* keys: exclusive lower bound in start_key */
	bool		has_end;		/* keys: inclusive upper bound in end_key */
	char		start_key[KEY_TEXT_LEN];	/* text[] literal */
	char		end_key[KEY_TEXT_LEN];
	BlockNumber start_block;
	BlockNumber end_block;		/* InvalidBlockNumber: to the end */

	/* progress and outcome, set by the worker */
	SharedProgress progress;
	volatile int worker_pid;	/* the worker that took the range */
	volatile bool started;
	volatile bool done;
	volatile bool failed;
	int			sqlerrcode;
	char		message[ERROR_TEXT_LEN];
	char		detail[ERROR_TEXT_LEN];
	char		hint[ERROR_TEXT_LEN];
} WorkerSlot;

typedef struct ParallelShared
{
	Oid			dboid;
	Oid			sessionoid;		/* who logged in: can log in, so workers connect as it */
	Oid			roleoid;		/* whose privileges the work runs with */
	Oid			relid;
	NameData	colname;
	bool		by_ctid;
	BackfillOptions opts;
	volatile bool stop;			/* leader to workers: stop after this batch */
	pg_atomic_uint32 next_range;	/* the queue: workers take ranges in turn */
	int64		job_id;
	Oid			jobs_namespace;
	int			nworkers;		/* ranges in slots[] */
	double		estimated_rows; /* the leader's, so workers need not count again */
	Size		value_offset;	/* the value, as text, after the slots */
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} ParallelShared;

PGDLLEXPORT void safe_backfill_worker_main(Datum main_arg);

static const char *
shared_value(ParallelShared *sh)
{
	return (const char *) sh + sh->value_offset;
}

/* ---------------------------------------------------------------------
 * Cutting the table into ranges
 * --------------------------------------------------------------------- */

/* The key at a given offset in key order, as a text[] literal; false if none. */
static bool
key_at_offset(BackfillTarget *target, int64 offset, char *buf)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(offset)};
	Datum	   *texts;
	char	   *literal;
	bool		found;
	int			i;

	if (SPI_execute_with_args(sql_key_bound(target, false), 1, types, args, NULL,
							  true, 1) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: finding range boundaries failed");
	found = SPI_processed == 1;
	if (found)
	{
		texts = palloc(sizeof(Datum) * target->nkeys);
		for (i = 0; i < target->nkeys; i++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);

			texts[i] = CStringGetTextDatum(v);
		}
		/* array_in/array_out cache in fn_extra: call them with an FmgrInfo */
		literal = OidOutputFunctionCall(F_ARRAY_OUT,
										PointerGetDatum(construct_array(texts, target->nkeys, TEXTOID,
																		-1, false, TYPALIGN_INT)));
		found = strlen(literal) < KEY_TEXT_LEN;
		if (found)
			strlcpy(buf, literal, KEY_TEXT_LEN);
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * Primary-key quantiles from the row estimate; false when a boundary is
 * missing (a tiny table) or its text too long to hand over.
 */
static bool
cut_key_ranges(ParallelShared *sh, BackfillTarget *target, double rows)
{
	int			n = sh->nworkers;
	int			i;

	for (i = 0; i < n; i++)
	{
		WorkerSlot *slot = &sh->slots[i];

		slot->has_start = i > 0;
		slot->has_end = i < n - 1;
		if (slot->has_end &&
			!key_at_offset(target, (int64) (rows * (i + 1) / n), slot->end_key))
			return false;
		if (slot->has_start)
			strlcpy(slot->start_key, sh->slots[i - 1].end_key, KEY_TEXT_LEN);
	}
	return true;
}

static void
cut_block_ranges(ParallelShared *sh, BackfillTarget *target)
{
	BlockNumber blocks = table_block_count(target->relid);
	int			n = sh->nworkers;
	int			i;

	for (i = 0; i < n; i++)
	{
		sh->slots[i].start_block = (BlockNumber) ((uint64) blocks * i / n);
		sh->slots[i].end_block = i < n - 1 ?
			(BlockNumber) ((uint64) blocks * (i + 1) / n) : InvalidBlockNumber;
	}
}

/* ---------------------------------------------------------------------
 * The leader
 * --------------------------------------------------------------------- */

static bool
start_worker(dsm_segment *seg, int slotno, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "safe_backfill");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "safe_backfill_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "safe_backfill worker %d for PID %d",
			 slotno + 1, MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "safe_backfill worker");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(worker.bgw_extra, &slotno, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

static void
sum_progress(ParallelShared *sh, BackfillStats *stats)
{
	int			i;

	stats->rows_filled = stats->rows_scanned = stats->batches = 0;
	for (i = 0; i < sh->nworkers; i++)
	{
		stats->rows_filled += sh->slots[i].progress.rows_filled;
		stats->rows_scanned += sh->slots[i].progress.rows_scanned;
		stats->batches += sh->slots[i].progress.batches;
	}
}

static void
report_parallel_progress(BackfillTarget *target, BackfillStats *stats, int nworkers)
{
	TimestampTz now = GetCurrentTimestamp();
	double		elapsed = (double) (now - stats->started) / USECS_PER_SEC;
	double		fraction = stats->estimated_rows > 0 ?
		Min(1.0, stats->rows_scanned / stats->estimated_rows) : 0;

	if (safe_backfill_progress_interval_ms <= 0 ||
		!TimestampDifferenceExceeds(stats->last_report, now,
									safe_backfill_progress_interval_ms))
		return;
	stats->last_report = now;
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: %d workers, batch " INT64_FORMAT ", " INT64_FORMAT " of ~%.0f rows (%.0f%%), eta %.0f s",
					target->display, nworkers, stats->batches, stats->rows_scanned,
					Max(stats->estimated_rows, (double) stats->rows_scanned),
					fraction * 100, fraction > 0 ? elapsed / fraction - elapsed : 0)));
}

static bool
all_ranges_done(ParallelShared *sh)
{
	for (int i = 0; i < sh->nworkers; i++)
		if (!sh->slots[i].done)
			return false;
	return true;
}

/*
 * Wait until every worker has stopped; true if every range was filled.  A
 * worker that stops while ranges are left has failed or died: the others
 * then stop after their current batch.
 */
/* A worker that is gone left a range it had taken unfinished: it failed or died. */
static bool
range_abandoned(ParallelShared *sh, pid_t gone)
{
	for (int i = 0; i < sh->nworkers; i++)
		if (sh->slots[i].started && !sh->slots[i].done && sh->slots[i].worker_pid == gone)
			return true;
	return false;
}

static bool
wait_for_workers(ParallelShared *sh, BackgroundWorkerHandle **handles,
				 int nstarted, BackfillTarget *target, BackfillStats *stats)
{
	pid_t		seen[MAX_WORKERS] = {0};

	for (;;)
	{
		int			running = 0;
		int			i;
		pid_t		pid;

		for (i = 0; i < nstarted; i++)
		{
			BgwHandleStatus status = GetBackgroundWorkerPid(handles[i], &pid);

			if (status == BGWH_STARTED)
				seen[i] = pid;
			if (status != BGWH_STOPPED && status != BGWH_POSTMASTER_DIED)
				running++;
			else if (range_abandoned(sh, seen[i]))
				sh->stop = true;	/* the others stop after their current batch */
		}
		sum_progress(sh, stats);
		if (running == 0)
			break;
		report_parallel_progress(target, stats, nstarted);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return all_ranges_done(sh);
}

/*
 * Re-raise the first error a worker hit, as it hit it.  The slot is copied
 * out first: the shared memory goes away before we raise.
 */
static void
raise_worker_error(dsm_segment *seg, ParallelShared *sh, int nstarted,
				   BackfillTarget *target, BackfillStats *stats)
{
	WorkerSlot	failed;
	int			which = -1;
	int			nranges = sh->nworkers;
	int			i;

	for (i = 0; i < sh->nworkers && which < 0; i++)
		if (sh->slots[i].failed)
		{
			memcpy(&failed, &sh->slots[i], sizeof(WorkerSlot));
			which = i;
		}
	dsm_detach(seg);

	if (which >= 0)
		ereport(ERROR,
				(errcode(failed.sqlerrcode),
				 errmsg_internal("%s", failed.message),
				 failed.detail[0] ? errdetail_internal("%s", failed.detail) : 0,
				 failed.hint[0] ? errhint("%s", failed.hint) : 0,
				 errcontext("safe_backfill: range %d of %d, run by one of %d workers; " INT64_FORMAT " rows filled and committed by all workers",
							which + 1, nranges, nstarted, stats->rows_filled)));
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("safe_backfill: %s: a parallel worker stopped before finishing its range",
					target->display),
			 errdetail(INT64_FORMAT " rows were filled and committed; nothing is half-written.",
					   stats->rows_filled),
			 errhint("Call safe_backfill again: it fills the rows still NULL.")));
}

static dsm_segment *
create_shared(BackfillTarget *target, const BackfillOptions *opts, int nworkers,
			  bool by_ctid, ParallelShared **shp)
{
	Oid			outfunc;
	bool		isvarlena;
	char	   *value;
	Size		slots_size = offsetof(ParallelShared, slots) + sizeof(WorkerSlot) * nworkers;
	dsm_segment *seg;
	ParallelShared *sh;

	getTypeOutputInfo(target->atttypid, &outfunc, &isvarlena);
	value = OidOutputFunctionCall(outfunc, target->value);
	seg = dsm_create(slots_size + strlen(value) + 1, 0);
	/* the mapping must outlive the transaction we are in */
	dsm_pin_mapping(seg);
	sh = dsm_segment_address(seg);
	memset(sh, 0, slots_size);
	sh->dboid = MyDatabaseId;
	sh->sessionoid = GetSessionUserId();
	sh->roleoid = GetUserId();
	sh->relid = target->relid;
	namestrcpy(&sh->colname, target->colname);
	sh->by_ctid = by_ctid;
	sh->opts = *opts;
	sh->nworkers = nworkers;
	pg_atomic_init_u32(&sh->next_range, 0);
	sh->value_offset = slots_size;
	strcpy((char *) sh + slots_size, value);
	*shp = sh;
	return seg;
}

/* Record the ranges of a new run, so an interrupted run resumes each one. */
static void
save_ranges(ParallelShared *sh, BackfillJob *job)
{
	for (int i = 0; i < sh->nworkers; i++)
	{
		WorkerSlot *slot = &sh->slots[i];

		slot->range_no = i + 1;
		job_insert_range(job, slot->range_no,
						 slot->has_start ? slot->start_key : NULL,
						 slot->has_end ? slot->end_key : NULL,
						 slot->start_block, slot->end_block);
	}
}

/* The unfinished ranges of an interrupted run, from where each stopped. */
static int
load_ranges(ParallelShared *sh, JobRange *ranges, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		WorkerSlot *slot = &sh->slots[i];

		slot->range_no = ranges[i].range_no;
		slot->has_start = ranges[i].last_key != NULL;
		if (slot->has_start)
			strlcpy(slot->start_key, ranges[i].last_key, KEY_TEXT_LEN);
		slot->has_end = ranges[i].end_key != NULL;
		if (slot->has_end)
			strlcpy(slot->end_key, ranges[i].end_key, KEY_TEXT_LEN);
		slot->start_block = ranges[i].next_block;
		slot->end_block = ranges[i].end_block;
	}
	return n;
}

/* How many ranges an earlier run of this job left unfinished, if it had any. */
int
parallel_unfinished_ranges(BackfillJob *job)
{
	JobRange   *ranges;

	return job_load_ranges(job, &ranges);
}

/*
 * Run the main pass with up to opts->workers workers, taking the ranges in
 * turn.  A new run cuts the table into opts->workers ranges; a resumed one
 * continues the ranges its job left unfinished.  Returns false, having
 * changed nothing, when it cannot run in parallel (no worker slot free, a
 * table too small to cut); the caller then runs it serially.
 */
bool
run_parallel_main_pass(BackfillTarget *target, const BackfillOptions *opts,
					   BackfillStats *stats, bool by_ctid, BackfillJob *job,
					   bool resumed)
{
	JobRange   *unfinished = NULL;
	int			nranges = resumed ? job_load_ranges(job, &unfinished) : opts->workers;
	int			wanted;
	BackgroundWorkerHandle *handles[MAX_WORKERS];
	ParallelShared *sh;
	dsm_segment *volatile seg;
	/* changed inside PG_TRY and read in PG_CATCH: must not live in a register */
	volatile int nstarted = 0;
	bool		complete = false;

	if (nranges == 0)
		return resumed;			/* every range of the resumed run was done */
	nranges = Min(nranges, MAX_WORKERS);
	wanted = Min(nranges, Max(1, opts->workers));
	seg = create_shared(target, opts, nranges, by_ctid, &sh);
	sh->job_id = job_id(job);
	sh->estimated_rows = stats->estimated_rows;
	sh->jobs_namespace = get_func_namespace(opts->procoid);
	if (resumed)
		sh->nworkers = load_ranges(sh, unfinished, nranges);
	else
	{
		if (by_ctid)
			cut_block_ranges(sh, target);
		else if (!cut_key_ranges(sh, target, stats->estimated_rows))
		{
			dsm_detach(seg);
			ereport(NOTICE,
					(errmsg("safe_backfill: %s: the table is too small to split or its keys too long; running in this session",
							target->display)));
			return false;
		}
		save_ranges(sh, job);
	}

	/* nothing of ours may hold back the pruning of the workers' dead rows */
	commit_transaction();

	PG_TRY();
	{
		while (nstarted < wanted && start_worker(seg, nstarted, &handles[nstarted]))
			nstarted++;
		if (nstarted == 0)
		{
			ereport(NOTICE,
					(errmsg("safe_backfill: %s: no background worker slot is free (max_worker_processes = %d); running in this session",
							target->display, max_worker_processes)));
			dsm_detach(seg);
			seg = NULL;
		}
		else
		{
			if (nstarted < wanted)
				ereport(NOTICE,
						(errmsg("safe_backfill: %s: only %d of %d background workers could start (max_worker_processes = %d); they take the %d ranges in turn",
								target->display, nstarted, wanted, max_worker_processes,
								sh->nworkers)));
			complete = wait_for_workers(sh, handles, nstarted, target, stats);
		}
	}
	PG_CATCH();
	{
		/* cancelled: every worker stops after its current batch */
		if (seg != NULL)
		{
			sh->stop = true;
			for (int i = 0; i < nstarted; i++)
				(void) WaitForBackgroundWorkerShutdown(handles[i]);
			dsm_detach(seg);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (seg == NULL)
		return false;
	if (!complete)
		raise_worker_error(seg, sh, nstarted, target, stats);
	dsm_detach(seg);
	return true;
}

/* ---------------------------------------------------------------------
 * A worker
 * --------------------------------------------------------------------- */

static void
record_worker_error(WorkerSlot *slot)
{
	ErrorData  *edata = CopyErrorData();

	slot->sqlerrcode = edata->sqlerrcode;
	strlcpy(slot->message, edata->message ? edata->message : "", ERROR_TEXT_LEN);
	strlcpy(slot->detail, edata->detail ? edata->detail : "", ERROR_TEXT_LEN);
	strlcpy(slot->hint, edata->hint ? edata->hint : "", ERROR_TEXT_LEN);
	pg_write_barrier();
	slot->failed = true;
}

static void
parse_key_literal(const char *literal, Datum **keys, int *nkeys)
{
	Datum		array = OidInputFunctionCall(F_ARRAY_IN, (char *) literal, TEXTOID, -1);

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  keys, NULL, nkeys);
}

static BatchIterator *
worker_iterator(ParallelShared *sh, WorkerSlot *slot, BackfillTarget *target)
{
	BackfillOptions *opts = &sh->opts;
	double		rows = sh->estimated_rows;
	BatchIterator *it;

	if (sh->by_ctid)
	{
		it = iterator_create_ctid(target, opts->batch_size, rows);
		iterator_limit_blocks(it, slot->start_block, slot->end_block);
		return it;
	}
	it = iterator_create_keyset(target, opts->batch_size, rows);
	if (slot->has_start)
	{
		JobPosition pos = {0};

		parse_key_literal(slot->start_key, &pos.keys, &pos.nkeys);
		(void) iterator_resume(it, &pos);
	}
	if (slot->has_end)
	{
		Datum	   *keys;
		int			nkeys;

		parse_key_literal(slot->end_key, &keys, &nkeys);
		iterator_limit_keys(it, keys, nkeys);
	}
	return it;
}

/* Fill one range; true if filled to its end, false if the leader said stop. */
static bool
fill_range(ParallelShared *sh, WorkerSlot *slot, BackfillTarget *target)
{
	BackfillStats stats = {0};
	BackfillOptions opts = sh->opts;
	BatchIterator *it;
	RangeRecorder *range;
	bool		completed;

	PushActiveSnapshot(GetTransactionSnapshot());
	it = worker_iterator(sh, slot, target);
	range = range_recorder(sh->jobs_namespace, sh->job_id, slot->range_no);
	PopActiveSnapshot();

	stats.started = stats.last_report = GetCurrentTimestamp();
	opts.stop = &sh->stop;
	opts.progress = &slot->progress;
	opts.range = range;
	opts.workers = 1;
	/* the other workers' running batches keep our latest dead rows visible */
	opts.reuse_lag = 2;
	completed = run_main_pass(target, it, &stats, &opts);
	if (completed)
		range_record_done(range);
	commit_transaction();
	iterator_free(it);
	return completed;
}

/* Take ranges from the queue until none is left or the leader says stop. */
static void
worker_fill_ranges(ParallelShared *sh)
{
	BackfillTarget *target;
	uint32		r;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill worker: SPI_connect_ext failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	target = resolve_target(sh->relid, NameStr(sh->colname));
	check_backfill_privileges(target);
	coerce_value_to_column(target, CStringGetTextDatum(shared_value(sh)), TEXTOID);
	PopActiveSnapshot();

	while (!sh->stop &&
		   (r = pg_atomic_fetch_add_u32(&sh->next_range, 1)) < (uint32) sh->nworkers)
	{
		WorkerSlot *slot = &sh->slots[r];

		slot->worker_pid = MyProcPid;
		pg_write_barrier();
		slot->started = true;
		PG_TRY();
		{
			bool		filled = fill_range(sh, slot, target);

			pg_write_barrier();
			slot->done = filled;
		}
		PG_CATCH();
		{
			record_worker_error(slot);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	SPI_finish();
}

void
safe_backfill_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	ParallelShared *sh;
	int			workerno;
	Portal		volatile portal = NULL;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&workerno, MyBgworkerEntry->bgw_extra, sizeof(int));
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill worker: the leader is gone")));
	sh = dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(sh->dboid, sh->sessionoid, 0);
	/* the caller's current role (after SET ROLE): no more privileges than it has */
	SetUserIdAndSecContext(sh->roleoid, SECURITY_LOCAL_USERID_CHANGE);
	SetConfigOption("application_name", "safe_backfill worker", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("safe_backfill worker");
	pgstat_report_activity(STATE_RUNNING, "safe_backfill worker");

	StartTransactionCommand();

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
	worker_fill_ranges(sh);
	MarkPortalDone(portal);
	ActivePortal = NULL;
	CommitTransactionCommand();

	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

/* Whether a saved key position (text[] literal) fits a worker's range slot. */
bool
parallel_key_text_fits(const char *literal)
{
	return literal == NULL || strlen(literal) < KEY_TEXT_LEN;
}

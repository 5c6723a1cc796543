/*
 * backfill.c
 *		Drive the batches: one transaction each, progress, the sweeps that
 *		prove nothing was missed, and the summary.
 */
#include "safe_backfill.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* Which pass a batch belongs to, for progress and error context. */
/*
 * Block ranges whose rewritten rows wait to be pruned.  A dead row version
 * can be pruned only once no running snapshot can see it; with parallel
 * workers, another worker's batch is always running, with a snapshot from
 * before our latest commit, so a worker prunes the range of two batches ago.
 */
#define REUSE_QUEUE 4

typedef struct FreedRange
{
	BlockNumber start;
	BlockNumber end;
} FreedRange;

typedef struct PassState
{
	BackfillTarget *target;
	FreedRange	freed[REUSE_QUEUE];
	int			nfreed;
	BatchIterator *it;
	BackfillStats *stats;
	const BackfillOptions *opts;
	BackfillJob *job;
	int			sweep;			/* 0 for the main pass */
	int64		pass_filled;
	MemoryContext pass_cxt;		/* lives as long as the pass */
	BatchIterator *own_it;		/* an iterator this pass created: freed by it */
} PassState;

/*
 * After SPI_commit the next transaction starts by itself from PostgreSQL 15
 * on; before that the caller had to start it.
 */
void
commit_transaction(void)
{
	SPI_commit();
#if PG_VERSION_NUM < 150000
	SPI_start_transaction();
#endif
}

static double
seconds_since(TimestampTz start)
{
	return (double) (GetCurrentTimestamp() - start) / USECS_PER_SEC;
}

/*
 * Runs for every message raised during a pass, NOTICEs and LOG lines
 * included, in ErrorContext, which only an ERROR resets: describe the
 * position in a scratch context, or each NOTICE would leak a little.
 */
static void
batch_error_context(void *arg)
{
	PassState  *pass = (PassState *) arg;
	MemoryContext scratch = AllocSetContextCreate(CurrentMemoryContext,
												  "safe_backfill error context",
												  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(scratch);
	char	   *where = iterator_describe_position(pass->it);

	MemoryContextSwitchTo(old);
	if (pass->sweep > 0)
		errcontext("safe_backfill: %s: sweep %d, batch " INT64_FORMAT ", %s",
				   pass->target->display, pass->sweep, pass->stats->batches + 1,
				   where);
	else
		errcontext("safe_backfill: %s: batch " INT64_FORMAT ", %s",
				   pass->target->display, pass->stats->batches + 1, where);
	MemoryContextDelete(scratch);
}

/*
 * pg_stat_activity shows the CALL; append where it is, about once a second,
 * so another session can see it without the NOTICEs.
 */
static void
report_activity(PassState *pass)
{
	BackfillStats *stats = pass->stats;
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(stats->last_activity, now, 1000))
		return;
	stats->last_activity = now;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("%s /* safe_backfill: %s, batch " INT64_FORMAT ", " INT64_FORMAT " rows filled, %.0f%% */",
									debug_query_string ? debug_query_string : "CALL safe_backfill(...)",
									pass->sweep > 0 ? "sweep" : "main pass",
									stats->batches, stats->rows_filled,
									iterator_fraction_done(pass->it) * 100));
}

/* At most one line per progress_interval; 0 turns the lines off. */
static void
report_progress(PassState *pass)
{
	BackfillStats *stats = pass->stats;
	TimestampTz now = GetCurrentTimestamp();
	double		elapsed;
	double		fraction;
	double		eta;

	if (safe_backfill_progress_interval_ms <= 0 ||
		!TimestampDifferenceExceeds(stats->last_report, now,
									safe_backfill_progress_interval_ms))
		return;
	stats->last_report = now;

	elapsed = seconds_since(stats->started);
	fraction = iterator_fraction_done(pass->it);
	eta = fraction > 0 ? elapsed / fraction - elapsed : 0;

	if (pass->sweep > 0)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: sweep %d for rows missed, %.0f%% of the table checked, " INT64_FORMAT " rows filled",
						pass->target->display, pass->sweep, fraction * 100,
						pass->pass_filled)));
	else
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: batch " INT64_FORMAT ", " INT64_FORMAT " of ~%.0f rows (%.0f%%), %.3f s/batch, eta %.0f s",
						pass->target->display, stats->batches,
						stats->rows_scanned,
						Max(iterator_estimated_rows(pass->it), (double) stats->rows_scanned),
						fraction * 100, elapsed / Max(1, stats->batches), eta)));
}

/* Sleep without ignoring a cancel. */
void
sleep_interruptibly(int ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * The pause between two batches.  Whatever ran after the batch's commit
 * (pruning its pages, sizing the table, progress) may have opened
 * partitions, taken a snapshot or read the catalog: commit that first, so
 * that while we sleep no lock is held on the table or its partitions and
 * no snapshot holds back VACUUM (backend_xmin stays NULL).
 */
static void
pause_between_batches(int ms)
{
	if (ms <= 0)
		return;
	commit_transaction();
	sleep_interruptibly(ms);
}

static void
queue_freed_space(PassState *pass, BlockNumber start, BlockNumber end)
{
	int			lag = Min(pass->opts->reuse_lag, REUSE_QUEUE - 1);

	pass->freed[pass->nfreed].start = start;
	pass->freed[pass->nfreed].end = end;
	pass->nfreed++;
	if (pass->nfreed > lag)
	{
		reuse_freed_space(pass->target, pass->freed[0].start, pass->freed[0].end);
		memmove(&pass->freed[0], &pass->freed[1], sizeof(FreedRange) * (pass->nfreed - 1));
		pass->nfreed--;
	}
}

/* End of a pass: the ranges still waiting get their chance now. */
static void
flush_freed_space(PassState *pass)
{
	int			i;

	for (i = 0; i < pass->nfreed; i++)
		reuse_freed_space(pass->target, pass->freed[i].start, pass->freed[i].end);
	pass->nfreed = 0;
	commit_transaction();
}

/*
 * The primary key the keyset walks was dropped or replaced since the last
 * batch: from now on every batch would scan and sort the whole table to find
 * its bounds.  Walk the rest of the pass by ranges of heap blocks instead,
 * from the first block; the UPDATE fills only rows still NULL, so the rows
 * already filled cost a read, not a write.
 */
static void
leave_keyset_if_key_gone(PassState *pass)
{
	MemoryContext old;
	BatchIterator *blocks;

	if (iterator_by_ctid(pass->it) || primary_key_still_serves(pass->target))
		return;
	if (pass->opts->range)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill: %s: the primary key was dropped or changed while the workers were running",
						pass->target->display),
				 errdetail("Each worker walks a range of the primary key; without it every batch would read the whole table. The rows filled so far are committed."),
				 errhint("Call safe_backfill again: without a primary key it walks the table by ranges of heap blocks.")));

	ereport(NOTICE,
			(errmsg("safe_backfill: %s: the primary key was dropped or changed; continuing by ranges of heap blocks",
					pass->target->display),
			 errdetail("Walking the old key would now read and sort the whole table for every batch. The rest of the pass starts again from the first block; rows already filled are not written again.")));
	old = MemoryContextSwitchTo(pass->pass_cxt);
	blocks = iterator_create_ctid(pass->target, iterator_batch_size(pass->it),
								  pass->stats->estimated_rows);
	MemoryContextSwitchTo(old);
	if (pass->own_it)
		iterator_free(pass->own_it);
	pass->it = pass->own_it = blocks;
}

/* One attempt at a batch, run by run_with_lock_timeout() in a subtransaction. */
typedef struct BatchAttempt
{
	BatchIterator *it;
	BackfillJob *job;
	bool		ran;
	int64		filled;
	int64		scanned;
} BatchAttempt;

static void
batch_attempt_action(void *arg)
{
	BatchAttempt *attempt = (BatchAttempt *) arg;

	attempt->ran = iterator_run_batch(attempt->it, &attempt->filled, &attempt->scanned);
}

/* The batch failed for good: say so in the jobs table, then let it raise. */
static void
batch_failed(ErrorData *edata, void *arg)
{
	BatchAttempt *attempt = (BatchAttempt *) arg;

	job_finish(attempt->job, edata->message);
	commit_transaction();
}

/*
 * A batch that waited longer than batch_lock_timeout for a row lock (or hit
 * a deadlock) was rolled back: none of its rows stay locked.  Try the same
 * range again, smaller, after a pause; give up after max_batch_retries.
 */
static void
prepare_batch_retry(PassState *pass, int attempt)
{
	int			rows = iterator_batch_size(pass->it);
	int			smaller = Max(1, rows / 2);
	int			wait_ms = Min(10000, 50 << Min(attempt - 1, 8));

	if (attempt > pass->opts->max_batch_retries)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("safe_backfill: %s: batch " INT64_FORMAT " could not get its row locks after %d attempts",
						pass->target->display, pass->stats->batches + 1, attempt),
				 errdetail("Each attempt waited up to %d ms for rows locked by other transactions. The " INT64_FORMAT " rows filled before are committed and kept.",
						   pass->opts->batch_lock_timeout_ms, pass->stats->rows_filled),
				 errhint("Find the long transactions holding row locks on \"%s\" (pg_locks, pg_stat_activity), then call safe_backfill again; it continues with the rows still NULL.",
						 pass->target->relname)));

	ereport(NOTICE,
			(errmsg("safe_backfill: %s: batch " INT64_FORMAT " waited more than %d ms for a row lock and was rolled back; retrying with %d rows in %d ms (attempt %d of %d)",
					pass->target->display, pass->stats->batches + 1,
					pass->opts->batch_lock_timeout_ms, smaller, wait_ms,
					attempt + 1, pass->opts->max_batch_retries + 1)));
	commit_transaction();
	iterator_set_batch_size(pass->it, smaller);
	sleep_interruptibly(wait_ms);
}

/*
 * Batch times for the summary's percentiles, counted in a histogram of
 * fixed size, so a run of millions of batches keeps no list of them:
 * buckets 5% wide on a log scale from 0.01 ms, a percentile read back from
 * the middle of its bucket is off by at most 2.5%.  Allocated once, in the
 * pass's context (it outlives the batch).
 */
#define TIME_BUCKETS		512
#define TIME_BUCKET_BASE_MS	0.01
#define TIME_BUCKET_GROWTH	1.05

static int
time_bucket(double ms)
{
	if (ms <= TIME_BUCKET_BASE_MS)
		return 0;
	return Min(TIME_BUCKETS - 1,
			   (int) (log(ms / TIME_BUCKET_BASE_MS) / log(TIME_BUCKET_GROWTH)) + 1);
}

static double
time_bucket_ms(int bucket)
{
	return bucket == 0 ? TIME_BUCKET_BASE_MS :
		TIME_BUCKET_BASE_MS * pow(TIME_BUCKET_GROWTH, bucket - 0.5);
}

static void
record_batch_time(PassState *pass, double ms)
{
	BackfillStats *stats = pass->stats;

	if (stats->batch_ms == NULL)
	{
		stats->maxtimes = TIME_BUCKETS;
		stats->batch_ms = MemoryContextAllocZero(pass->pass_cxt,
												 sizeof(double) * TIME_BUCKETS);
	}
	stats->batch_ms[time_bucket(ms)] += 1;
	stats->ntimes++;
}

/*
 * Aim each main-pass batch at target_batch_ms: scale the next one by how far
 * this one was off, by at most a factor of two either way, within
 * [min(100, batch_size), batch_size].
 */
static void
adapt_batch_size(PassState *pass, double batch_ms)
{
	const BackfillOptions *opts = pass->opts;
	double		ratio;
	int			rows;

	if (opts->target_batch_ms <= 0 || pass->sweep > 0 || iterator_finished(pass->it))
		return;
	ratio = opts->target_batch_ms / Max(batch_ms, 0.1);
	ratio = Max(0.5, Min(2.0, ratio));
	rows = (int) Min((double) opts->batch_size, iterator_batch_size(pass->it) * ratio);
	iterator_set_batch_size(pass->it, Max(Min(100, opts->batch_size), rows));
}

/*
 * One batch in its own transaction; false when the pass has no range left.
 * *filled is the number of rows it wrote.
 */
static bool
run_one_batch(PassState *pass, int64 *filled)
{
	BatchAttempt attempt = {pass->it, pass->job, false, 0, 0};
	BlockNumber freed_start;
	BlockNumber freed_end;
	TimestampTz started;
	double		batch_ms;
	int			size = iterator_batch_size(pass->it);
	int			n;

	wait_for_replicas(pass->target, pass->opts->max_replica_lag_ms,
					  pass->opts->max_replica_wait_ms, &pass->stats->replica_wait_ms);
	for (n = 1;; n++)
	{
		CHECK_FOR_INTERRUPTS();
		recheck_target(pass->target);
		reject_instead_rules(pass->target);
		leave_keyset_if_key_gone(pass);
		attempt.it = pass->it;
		started = GetCurrentTimestamp();
		if (run_with_lock_timeout(pass->opts->batch_lock_timeout_ms,
								  batch_attempt_action, &attempt, batch_failed))
			break;
		prepare_batch_retry(pass, n);
	}
	if (attempt.ran && pass->opts->range)
		range_record_batch(pass->opts->range, iterator_position_keys(pass->it),
						   iterator_position_block(pass->it), attempt.filled);
	else if (attempt.ran)
		job_record_batch(pass->job, pass->sweep > 0 ? "sweep" : "main",
						 iterator_position_keys(pass->it),
						 iterator_position_block(pass->it),
						 attempt.filled, pass->sweep > 0 ? 0 : attempt.scanned);
	commit_transaction();
	if (attempt.filled > 0)
		replica_lag_note_commit();
	/* a retry shrank this batch only; the next ones keep their size */
	if (n > 1)
		iterator_set_batch_size(pass->it, size);
	*filled = attempt.filled;
	if (!attempt.ran)
		return false;
	batch_ms = (double) (GetCurrentTimestamp() - started) / 1000.0;

	/* the old versions are dead now that the batch committed */
	if (*filled > 0 && iterator_freed_blocks(pass->it, &freed_start, &freed_end))
		queue_freed_space(pass, freed_start, freed_end);

	pass->stats->batches++;
	pass->stats->rows_filled += *filled;
	pass->pass_filled += *filled;
	if (pass->sweep == 0)
	{
		pass->stats->rows_scanned += attempt.scanned;
		record_batch_time(pass, batch_ms);
		adapt_batch_size(pass, batch_ms);
	}
	if (pass->opts->progress)
	{
		pass->opts->progress->rows_filled = pass->stats->rows_filled;
		pass->opts->progress->rows_scanned = pass->stats->rows_scanned;
		pass->opts->progress->batches = pass->stats->batches;
	}
	return true;
}

static int64
run_pass(BackfillTarget *target, BatchIterator *it, BackfillStats *stats,
		 int sweep, const BackfillOptions *opts, BackfillJob *job)
{
	PassState	pass = {target, {{0, 0}}, 0, it, stats, opts, job, sweep, 0,
	CurrentMemoryContext, NULL};
	ErrorContextCallback errcb;
	MemoryContext batch_cxt;
	int64		filled;
	bool		more = true;

	/*
	 * Everything a batch allocates (statement arguments, the job record's
	 * key text, the pg_stat_activity line, ...) must go once the batch has
	 * committed, or memory grows with every batch of a long call.  Every SPI
	 * call returns to the connection's procedure context, so a context of
	 * our own is not enough: each batch runs in an SPI connection of its
	 * own, nonatomic like the CALL's, whose procedure context SPI_finish()
	 * deletes, inside batch_cxt, which is reset.  What must outlive a batch
	 * lives in the iterator's context, pass_cxt or kept plans.  On an error
	 * the connection is left to the end of the transaction, which unwinds
	 * the whole SPI stack.
	 */
	batch_cxt = AllocSetContextCreate(pass.pass_cxt, "safe_backfill batch",
									  ALLOCSET_DEFAULT_SIZES);
	errcb.callback = batch_error_context;
	errcb.arg = &pass;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	while (more)
	{
		MemoryContextSwitchTo(batch_cxt);
		if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
			elog(ERROR, "safe_backfill: SPI_connect_ext failed");
		more = !(opts->stop && *opts->stop) && run_one_batch(&pass, &filled);
		if (more)
		{
			report_activity(&pass);
			report_progress(&pass);
			/* the pause spreads out writes; a batch that wrote nothing needs none */
			if (!iterator_finished(pass.it) && filled > 0)
				pause_between_batches(opts->pause_ms);
		}
		SPI_finish();
		MemoryContextSwitchTo(pass.pass_cxt);
		MemoryContextReset(batch_cxt);
	}
	flush_freed_space(&pass);

	error_context_stack = errcb.previous;
	if (pass.own_it)
		iterator_free(pass.own_it);
	MemoryContextDelete(batch_cxt);
	return pass.pass_filled;
}

/*
 * A pass cannot see rows that were not committed when its range went by:
 * an insert that commits late, a row a concurrent UPDATE moved behind a ctid
 * range, or a row set back to NULL.  So after the main pass, sweep the whole
 * table by block ranges until a sweep finds nothing left to fill.
 */
static void
sweep_until_clean(BackfillTarget *target, BackfillStats *stats,
				  const BackfillOptions *opts, BackfillJob *job)
{
	for (;;)
	{
		BatchIterator *it;
		int64		filled;

		if (stats->sweeps >= SAFE_BACKFILL_MAX_SWEEPS)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("safe_backfill: %s: rows with NULL keep appearing",
							target->display),
					 errdetail("%d sweeps over the table each found new NULL values; " INT64_FORMAT " rows were filled and committed.",
							   stats->sweeps, stats->rows_filled),
					 errhint("Something keeps writing NULL into column \"%s\". Give the column a default (ALTER TABLE %s ALTER COLUMN %s SET DEFAULT ...) or change the application, then call safe_backfill again.",
							 target->colname, target->qualified, target->colname)));

		stats->sweeps++;
		it = iterator_create_sweep(target, opts->batch_size, stats->estimated_rows);
		filled = run_pass(target, it, stats, stats->sweeps, opts, job);
		iterator_free(it);
		if (filled == 0)
			break;
	}
}

/* Nearest-rank percentile of the main pass's batch times. */
static double
batch_time_percentile(BackfillStats *stats, double p)
{
	double		rank;
	double		seen = 0;
	int			b;

	if (stats->ntimes == 0)
		return 0;
	rank = Max(1.0, ceil(p * stats->ntimes));
	for (b = 0; b < stats->maxtimes; b++)
	{
		seen += stats->batch_ms[b];
		if (seen >= rank)
			return time_bucket_ms(b);
	}
	return time_bucket_ms(stats->maxtimes - 1);
}

static void
report_summary(BackfillTarget *target, BackfillStats *stats)
{
	double		seconds = seconds_since(stats->started);
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfo(&detail, INT64_FORMAT " batches including %d %s of the table, %.2f s",
					 stats->batches, stats->sweeps, stats->sweeps == 1 ? "sweep" : "sweeps",
					 seconds);
	if (stats->rows_filled > 0)
		appendStringInfo(&detail, ", %.0f rows/s",
						 seconds > 0 ? stats->rows_filled / seconds : 0.0);
	/* batch times are this session's; a parallel main pass has none here */
	if (stats->ntimes > 0)
		appendStringInfo(&detail, "; batch time p50 %.1f ms, p99 %.1f ms",
						 batch_time_percentile(stats, 0.5),
						 batch_time_percentile(stats, 0.99));
	appendStringInfoChar(&detail, '.');

	if (stats->rows_filled == 0)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: nothing to fill, no NULL values found (0 rows written)",
						target->display),
				 errdetail_internal("%s", detail.data)));
	else
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: filled " INT64_FORMAT " rows",
						target->display, stats->rows_filled),
				 errdetail_internal("%s", detail.data)));
}

/*
 * The main pass alone, without a job record: what a parallel worker runs
 * over its range.  False if the leader asked it to stop before the end.
 */
bool
run_main_pass(BackfillTarget *target, BatchIterator *it, BackfillStats *stats,
			  const BackfillOptions *opts)
{
	run_pass(target, it, stats, 0, opts, NULL);
	return iterator_finished(it);
}

static void
report_resume(BackfillTarget *target, BackfillJob *job, const JobPosition *pos,
			  const char *where)
{
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: resuming run " INT64_FORMAT " %s, after %s; " INT64_FORMAT " rows were filled before",
					target->display, job_id(job),
					pos->sweeping ? "at its sweep" : "in its main pass", where,
					pos->rows_done)));
}

static void
backfill_with_job(BackfillTarget *target, const BackfillOptions *opts,
				  BackfillStats *stats, BackfillJob *job, BatchIterator *it,
				  const JobPosition *pos)
{
	bool		parallel_run = pos->resumed && !pos->sweeping && job_has_ranges(job);
	int			ranges = parallel_run ? parallel_unfinished_ranges(job) : 0;

	if (parallel_run)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: resuming run " INT64_FORMAT ", %d of its parallel ranges unfinished, each from where it stopped; " INT64_FORMAT " rows were filled before",
						target->display, job_id(job), ranges, pos->rows_done)));
	else if (pos->resumed)
		report_resume(target, job, pos, pos->sweeping ? "the main pass" : iterator_resume(it, pos));
	if (!pos->sweeping)
	{
		/*
		 * A parallel run resumes its unfinished ranges (none left: straight
		 * to the sweep); a serial one where it stopped.
		 */
		if ((parallel_run || (opts->workers > 1 && !pos->resumed)) &&
			run_parallel_main_pass(target, opts, stats, iterator_by_ctid(it), job, parallel_run))
		{
			/* the workers recorded their ranges: note the pass as done */
			job_record_batch(job, "sweep", NULL, InvalidBlockNumber,
							 stats->rows_filled, stats->rows_scanned);
			commit_transaction();
		}
		else
			run_pass(target, it, stats, 0, opts, job);
	}
	iterator_free(it);

	sweep_until_clean(target, stats, opts, job);
	job_finish(job, NULL);
	commit_transaction();
	report_summary(target, stats);
}

void
run_backfill(BackfillTarget *target, const BackfillOptions *opts)
{
	BackfillStats stats = {0};
	BatchIterator *it;
	BackfillJob *volatile job = NULL;
	JobPosition pos;

	stats.started = GetCurrentTimestamp();
	stats.last_report = stats.started;
	replica_lag_reset();

	if (target->has_children)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: inheritance children are not filled",
						target->display),
				 errhint("Call safe_backfill on each child table too.")));

	stats.estimated_rows = estimate_table_rows(target->relid);
	it = (target->nkeys > 0 && safe_backfill_iteration != ITERATE_CTID) ?
		iterator_create_keyset(target, opts->batch_size, stats.estimated_rows) :
		iterator_create_ctid(target, opts->batch_size, stats.estimated_rows);

	/* the column's advisory lock is a session lock: release it on any exit */
	PG_TRY();
	{
		job = job_start(target, opts->procoid, iterator_by_ctid(it),
						stats.estimated_rows, &pos);
		commit_transaction();
		backfill_with_job(target, opts, &stats, job, it, &pos);
	}
	PG_CATCH();
	{
		job_release(job);
		PG_RE_THROW();
	}
	PG_END_TRY();
	job_release(job);
}

/*
 * pass.c
 *		A pass over the table in batches: one transaction each, retries,
 *		HOT rounds, space reuse, progress; the sweeps that prove nothing was
 *		missed, and the summary.  Every strategy (serial, each parallel
 *		worker, each Citus shard on its node) runs its batches here.
 */
#include "safe_backfill.h"
#include "src/expression.h"
#include "src/iterate.h"
#include "src/jobs.h"
#include "src/locking.h"
#include "src/pass.h"
#include "src/replicas.h"
#include "src/settings.h"
#include "src/space.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/xact.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/memutils.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

/* Which pass a batch belongs to, for progress and error context. */
/*
 * Block ranges whose rewritten rows wait to be pruned.  A dead row version
 * can be pruned only once no running snapshot can see it; with parallel
 * workers, another worker's batch is always running, with a snapshot from
 * before our latest commit, so a worker prunes the range of two batches ago.
 */
#define REUSE_QUEUE 4

/* One batch's ranges (one per leaf of a partitioned table walked by key). */
typedef struct FreedRange
{
	FreedBlocks *ranges;		/* in pass_cxt */
	int			nranges;
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
	const WorkerLink *link;		/* in a parallel worker; else NULL */
	int			sweep;			/* 0 for the main pass */
	int64		pass_filled;
	MemoryContext pass_cxt;		/* lives as long as the pass */
	BatchIterator *own_it;		/* an iterator this pass created: freed by it */
	/* batches not yet in the jobs table (see batch_worth_recording) */
	int64		unrecorded_batches;
	int64		unrecorded_scanned;
	TimestampTz last_recorded;
	int			hot_rounds;		/* rounds a batch may be split into (choose_hot_rounds) */
	int			horizon_timeouts;	/* wait_for_round_horizon: timeouts in a row */
	bool		no_horizon_wait;	/* ... too many: no more waits */
	StringInfoData where;		/* the batch's position, for error context */
} PassState;

static double
seconds_since(TimestampTz start)
{
	return (double) (GetCurrentTimestamp() - start) / USECS_PER_SEC;
}

/*
 * Runs for every message raised during a pass, NOTICEs and LOG lines
 * included, while the message is being reported: it only appends the
 * position prepared before the batch (prepare_error_position), and does no
 * catalog lookup and calls no output function, which could fail in turn or
 * format the key under settings a trigger set for itself.
 */
static void
batch_error_context(void *arg)
{
	PassState  *pass = (PassState *) arg;

	if (pass->sweep > 0)
		errcontext("safe_backfill: %s: sweep %d, batch " INT64_FORMAT ", %s",
				   pass->target->display, pass->sweep, pass->stats->batches + 1,
				   pass->where.data);
	else
		errcontext("safe_backfill: %s: batch " INT64_FORMAT ", %s",
				   pass->target->display, pass->stats->batches + 1, pass->where.data);
}

/*
 * Describe where the next batch starts, for batch_error_context, before it
 * runs.  Formatted in the batch's memory, kept in one buffer of the pass
 * (allocated in pass_cxt, so it grows there) that every batch reuses.
 */
static void
prepare_error_position(PassState *pass)
{
	resetStringInfo(&pass->where);
	appendStringInfoString(&pass->where, iterator_describe_position(pass->it));
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

/*
 * How many rows a progress line says were scanned, of how many.  A batch
 * counts the rows its key or block bounds cover, which over-counts one cut
 * short at the end of a parallel range (a whole batch for a few rows), and
 * the table's size is the planner's estimate: the line never claims more
 * rows than the estimate, as its percentage and the progress view stop at
 * 100%.
 */
static void
progress_rows(int64 scanned, double estimated, int64 *shown, double *total)
{
	if (estimated >= 1)
	{
		*shown = Min(scanned, (int64) estimated);
		*total = estimated;
	}
	else
	{
		*shown = scanned;
		*total = (double) scanned;
	}
}

/*
 * Whether a progress line is due: at most one per progress_interval, 0
 * turning them off.
 */
bool
progress_line_due(BackfillStats *stats)
{
	TimestampTz now = GetCurrentTimestamp();

	if (safe_backfill_progress_interval_ms <= 0 ||
		!TimestampDifferenceExceeds(stats->last_report, now,
									safe_backfill_progress_interval_ms))
		return false;
	stats->last_report = now;
	return true;
}

/*
 * The progress line of a main pass, serial or run by nworkers parallel
 * workers (0: serial): fraction is how much of the table it has covered,
 * estimated the rows the table is thought to have.
 */
void
report_main_progress(BackfillTarget *target, BackfillStats *stats, double fraction,
					 double estimated, int nworkers)
{
	double		elapsed = seconds_since(stats->started);
	double		eta = fraction > 0 ? elapsed / fraction - elapsed : 0;
	int64		scanned;
	double		total;

	progress_rows(stats->rows_scanned, estimated, &scanned, &total);
	if (target->change.kind != CHANGE_FILL)
		ereport(NOTICE,
				(errmsg("%s: %s: batch " INT64_FORMAT ", " INT64_FORMAT " of ~%.0f rows (%.0f%%), " INT64_FORMAT " %s, %.3f s/batch, eta %.0f s",
						target->change.procname, target->display, stats->batches, scanned,
						total, fraction * 100, stats->rows_filled, change_verb(target),
						elapsed / Max(1, stats->batches), eta)));
	else if (nworkers > 0)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: %d workers, batch " INT64_FORMAT ", " INT64_FORMAT " of ~%.0f rows (%.0f%%), eta %.0f s",
						target->display, nworkers, stats->batches, scanned, total,
						fraction * 100, eta)));
	else
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: batch " INT64_FORMAT ", " INT64_FORMAT " of ~%.0f rows (%.0f%%), %.3f s/batch, eta %.0f s",
						target->display, stats->batches, scanned, total,
						fraction * 100, elapsed / Max(1, stats->batches), eta)));
}

static void
report_progress(PassState *pass)
{
	double		fraction;

	if (!progress_line_due(pass->stats))
		return;
	fraction = iterator_fraction_done(pass->it);
	if (pass->sweep > 0)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: sweep %d for rows missed, %.0f%% of the table checked, " INT64_FORMAT " rows filled",
						pass->target->display, pass->sweep, fraction * 100,
						pass->pass_filled)));
	else
		report_main_progress(pass->target, pass->stats, fraction,
							 iterator_estimated_rows(pass->it), 0);
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
queue_freed_space(PassState *pass, const FreedBlocks *ranges, int nranges)
{
	int			lag = Min(pass->opts->reuse_lag, REUSE_QUEUE - 1);
	FreedRange *slot = &pass->freed[pass->nfreed];

	slot->ranges = MemoryContextAlloc(pass->pass_cxt, sizeof(FreedBlocks) * nranges);
	memcpy(slot->ranges, ranges, sizeof(FreedBlocks) * nranges);
	slot->nranges = nranges;
	pass->nfreed++;
	if (pass->nfreed > lag)
	{
		reuse_freed_space(pass->target, pass->freed[0].ranges, pass->freed[0].nranges);
		pfree(pass->freed[0].ranges);
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
	{
		reuse_freed_space(pass->target, pass->freed[i].ranges, pass->freed[i].nranges);
		pfree(pass->freed[i].ranges);
	}
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
	/* from the first block again, it would change rows a second time */
	if (pass->target->change.kind != CHANGE_FILL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: %s: the primary key was dropped or changed while the run was running",
						pass->target->change.procname, pass->target->display),
				 errdetail("The run walks the table by its primary key, so that each row is changed once; the batches committed before are kept, and the run is recorded as failed at its last key."),
				 errhint("Restore the primary key and call it again to resume, or run the rest with a plain statement.")));
	if (pass->link)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill: %s: the primary key was dropped or changed while the workers were running",
						pass->target->display),
				 errdetail("Each worker walks a range of the primary key; without it every batch would read the whole table. The rows filled so far are committed."),
				 errhint("Call it again on the table's current name, %s: without a primary key it walks the table by ranges of heap blocks.",
						 sql_hint_backfill_call(pass->target))));

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
	iterator_set_hot_rounds(blocks, pass->hot_rounds);
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

/*
 * A batch of an expression run failed on a value the column refuses (class
 * 22, data exception, or 23, integrity constraint: a domain CHECK, a value
 * too long), or on a subquery of more than one row (class 21), without
 * saying which row gave it: find that row and name it in
 * the error's detail.  Runs after the batch was rolled back, before the
 * error goes on to be recorded.
 */
typedef struct FailingRowSearch
{
	BatchIterator *it;
	int			sqlerrcode;
	const char *message;
	char	   *row;
} FailingRowSearch;

static void
find_failing_row_action(void *arg)
{
	FailingRowSearch *search = (FailingRowSearch *) arg;

	search->row = iterator_find_failing_row(search->it, search->sqlerrcode, search->message);
}

static void
name_failing_row(ErrorData *edata, void *arg)
{
	BatchAttempt *attempt = (BatchAttempt *) arg;
	int			class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
	FailingRowSearch search = {attempt->it, edata->sqlerrcode, edata->message, NULL};
	char	   *row;
	ErrorData  *search_error;

	if (class != ERRCODE_DATA_EXCEPTION && class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION &&
		class != ERRCODE_CARDINALITY_VIOLATION)
		return;
	/* the search is a courtesy: if it fails, the batch's error goes on as it is */
	if (!try_in_subtransaction(find_failing_row_action, &search, &search_error))
		return;
	row = search.row;
	if (row == NULL)
		return;
	edata->detail = edata->detail ?
		psprintf("%s\nThe expression's value for %s fails this way; what the batch wrote since its last commit was rolled back, earlier commits stay.", edata->detail, row) :
		psprintf("The expression's value for %s fails this way; what the batch wrote since its last commit was rolled back, earlier commits stay.", row);
}

/* Why a batch was rolled back, for the NOTICE of its retry. */
static char *
batch_retry_reason(PassState *pass, ErrorData *edata)
{
	if (edata != NULL && edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE)
		return psprintf("was rolled back (%s)", edata->message);
	if (edata != NULL && edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED)
		return pstrdup("hit a deadlock and was rolled back");
	return psprintf("waited more than %d ms for a row lock and was rolled back",
					pass->opts->batch_lock_timeout_ms);
}

/*
 * A batch that waited longer than batch_lock_timeout for a row lock (or hit
 * a deadlock, or a row it waited for was moved to another partition) was
 * rolled back: none of its rows stay locked.  Try the same range again,
 * smaller, after a pause; give up after max_batch_retries.
 */
static void stop_hot_rounds(PassState *pass);

static void
prepare_batch_retry(PassState *pass, int attempt, ErrorData *edata)
{
	int			rows = iterator_batch_size(pass->it);
	int			smaller = Max(1, rows / 2);
	int			wait_ms = Min(10000, 50 << Min(attempt - 1, 8));

	if (iterator_take_rounds_abandoned(pass->it))
	{
		stop_hot_rounds(pass);
		return;
	}

	if (attempt > pass->opts->max_batch_retries)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("safe_backfill: %s: batch " INT64_FORMAT " could not get its row locks after %d attempts",
						pass->target->display, pass->stats->batches + 1, attempt),
				 errdetail("Each attempt waited up to %d ms for rows locked by other transactions. The " INT64_FORMAT " rows filled before are committed and kept.",
						   pass->opts->batch_lock_timeout_ms, pass->stats->rows_filled),
				 errhint("Find the long transactions holding row locks on %s (pg_locks, pg_stat_activity), then call safe_backfill again; it continues with the rows still NULL.",
						 pass->target->qualified)));

	ereport(NOTICE,
			(errmsg("safe_backfill: %s: batch " INT64_FORMAT " %s; retrying with %d rows in %d ms (attempt %d of %d)",
					pass->target->display, pass->stats->batches + 1,
					batch_retry_reason(pass, edata), smaller, wait_ms,
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
 * A batch that wrote nothing commits nothing either, unless its record is
 * due: recording every empty batch would write WAL for each range of an
 * already filled table, which a standby must replay (and which makes
 * max_replica_lag throttle a run that changes no row).  Recording them about
 * once a second keeps the progress view current; a resume from an older
 * position only reads those empty ranges again, which writes nothing.
 */
static bool
batch_worth_recording(PassState *pass, int64 filled)
{
	return filled > 0 ||
		TimestampDifferenceExceeds(pass->last_recorded, GetCurrentTimestamp(),
								   EMPTY_BATCH_RECORD_MS);
}

/*
 * In the current transaction: the pass's position, with the rows filled and
 * the rows scanned and batches counted since the last record, in the
 * worker's range or in the job row.
 */
static void
record_position(PassState *pass, int64 filled, int64 scanned, int64 batches)
{
	if (pass->link)
		range_record_batch(pass->link->range, iterator_position_key(pass->it),
						   iterator_position_block(pass->it), filled, scanned, batches);
	else
		job_record_batch(pass->job, pass->sweep > 0 ? "sweep" : "main",
						 iterator_position_key(pass->it),
						 iterator_position_block(pass->it), filled, scanned, batches);
}

/* record_position with the batches not yet recorded, which then are. */
static void
record_unrecorded(PassState *pass, int64 filled)
{
	record_position(pass, filled, pass->unrecorded_scanned, pass->unrecorded_batches);
	pass->unrecorded_batches = 0;
	pass->unrecorded_scanned = 0;
}

/* In the batch's own transaction: its position and counts, when worth it. */
static void
record_batch(PassState *pass, BatchAttempt *attempt)
{
	pass->unrecorded_batches++;
	if (pass->sweep == 0)
		pass->unrecorded_scanned += attempt->scanned;
	if (!batch_worth_recording(pass, attempt->filled))
		return;
	record_unrecorded(pass, attempt->filled);
	pass->last_recorded = GetCurrentTimestamp();
}

/* At the end of a pass: count the empty batches not recorded yet. */
static void
record_skipped_batches(PassState *pass)
{
	if (pass->unrecorded_batches == 0)
		return;
	record_unrecorded(pass, 0);
	commit_transaction();
}

/*
 * Let this batch's transaction commit without waiting for its WAL to be
 * flushed, unless safe_backfill.synchronous_commit says so.  The batch's
 * rows and its job record commit together, so a crash that loses the last
 * few asynchronous commits loses both, and a re-run redoes exactly those
 * batches.  The run's last commit (job_finish, or the failure record) is an
 * ordinary one with the session's synchronous_commit: its flush covers every
 * earlier WAL record, so when CALL returns everything it wrote is as durable
 * as the session asked for.  Set at the start of each attempt, local to its
 * transaction (a retry's commit ends it).
 */
static void
commit_batch_asynchronously(void)
{
	if (!safe_backfill_synchronous_commit)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Attempts at the next UPDATE of the batch (the whole batch, or its next HOT
 * round), each in a subtransaction, until one gets its row locks.  A retry
 * makes the batch smaller, which starts a batch split into rounds over from
 * its first round.  *started is when the batch's first round began.
 * Returns the number of attempts.
 */
static int
attempt_batch_update(PassState *pass, BatchAttempt *attempt, TimestampTz *started)
{
	int			n;

	for (n = 1;; n++)
	{
		ErrorData  *edata = NULL;

		CHECK_FOR_INTERRUPTS();
		commit_batch_asynchronously();
		recheck_target(pass->target);
		reject_instead_rules(pass->target);
		leave_keyset_if_key_gone(pass);
		/* walking by blocks from now on: the batch starts somewhere else */
		if (attempt->it != pass->it)
			prepare_error_position(pass);
		attempt->it = pass->it;
		if (!iterator_round_pending(pass->it))
			*started = GetCurrentTimestamp();
		if (try_with_lock_timeout(pass->opts->batch_lock_timeout_ms,
								  batch_attempt_action, attempt,
								  pass->target->written.expression ? name_failing_row : NULL,
								  &edata))
			return n;
		prepare_batch_retry(pass, n, edata);
	}
}

/* Rows a batch (or one of its rounds) filled, in the totals and the shared progress. */
static void
count_rows_filled(PassState *pass, int64 filled)
{
	pass->stats->rows_filled += filled;
	pass->pass_filled += filled;
	if (pass->link)
		pass->link->progress->rows_filled = pass->stats->rows_filled;
}

/*
 * In a round's own transaction: the rows it filled.  The position stays
 * where the batch started until its last round (record_batch): a run
 * interrupted between two rounds redoes the whole batch, and "col IS NULL"
 * skips the rows its committed rounds filled, which are counted here.
 */
static void
record_round(PassState *pass, int64 filled)
{
	if (filled == 0)
		return;
	record_position(pass, filled, 0, 0);
}

/*
 * A round just committed and its pages are pruned next; but a statement of
 * this database that started before the commit still sees the row versions
 * it left dead: pruning now would keep them, and the next round's rows would
 * have to move (and add index entries) again.  With parallel workers the
 * other workers' statements are always such, and so are concurrent
 * clients'; they are short.  So wait until the table's own horizon has
 * passed the round (space.c table_horizon_passed: a transaction open in
 * another database does not count, as it does not for pruning), holding no
 * snapshot and no lock, on the latch: 1 ms, then twice as long each time up
 * to 10 ms (those statements end within a few ms: longer steps overshoot
 * them), 1 s in all at most.  Unless something holds the horizon, a serial
 * run's wait ends at the first look.
 *
 * A wait that times out means a long transaction of this database holds
 * pruning back: say which, once per run (per worker, with workers).  After three timeouts in a row,
 * stop waiting; then only look, once a round, whether the horizon has
 * passed (the transaction ended), and wait again from then on.
 */
#define ROUND_HORIZON_WAIT_MS	1000
#define ROUND_HORIZON_MAX_TIMEOUTS	3
#define ROUND_HORIZON_FIRST_SLEEP_MS	1
#define ROUND_HORIZON_MAX_SLEEP_MS	10

static void say_horizon_held(PassState *pass, TransactionId xid);

static void
wait_for_round_horizon(PassState *pass, TransactionId xid)
{
	TimestampTz start = GetCurrentTimestamp();
	int			sleep_ms = ROUND_HORIZON_FIRST_SLEEP_MS;
	Oid			relid = pass->target->relid;

	if (!TransactionIdIsValid(xid) || (pass->opts->reuse_lag == 0 && !pass->opts->round_waits))
		return;
	if (pass->no_horizon_wait)
	{
		if (table_horizon_passed(relid, xid))
			pass->no_horizon_wait = false;
		pass->horizon_timeouts = 0;
		return;
	}
	while (!table_horizon_passed(relid, xid))
	{
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), ROUND_HORIZON_WAIT_MS))
		{
			say_horizon_held(pass, xid);
			if (++pass->horizon_timeouts >= ROUND_HORIZON_MAX_TIMEOUTS)
				pass->no_horizon_wait = true;
			return;
		}
		sleep_interruptibly(sleep_ms);
		sleep_ms = Min(sleep_ms * 2, ROUND_HORIZON_MAX_SLEEP_MS);
	}
	pass->horizon_timeouts = 0;
}

/*
 * As VACUUM VERBOSE says what holds its cutoff back: the session whose
 * snapshot keeps the round's dead row versions, once per run.
 */
static void
say_horizon_held(PassState *pass, TransactionId xid)
{
	BackfillTarget *target = pass->target;
	char	   *holder;
	int			pid = 0;

	if (target->run.said_horizon_held)
		return;
	target->run.said_horizon_held = true;
	holder = describe_horizon_holder(xid, &pid);
	if (holder)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: the pages rewritten cannot be pruned while %s has a snapshot from before the last commit",
						target->display, holder),
				 errdetail("A transaction of this database that is older than the rows rewritten keeps their old versions: until it ends, rewritten rows move to other pages and add index entries (fewer HOT updates, the table and its indexes grow)."),
				 errhint("End that transaction (COMMIT, ROLLBACK or pg_terminate_backend(%d)); the run goes on meanwhile.",
						 pid)));
	else
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: the pages rewritten cannot be pruned: no session of this database shows a snapshot old enough to prevent it",
						target->display),
				 errdetail("A prepared transaction (pg_prepared_xacts) or a replication slot's xmin (pg_replication_slots) can hold back the horizon too; until it moves, rewritten rows move to other pages and add index entries.")));
}

/*
 * Commit what a batch (or one of its rounds) wrote, if the column is still
 * ours: what it ran may have released the column's lock.
 */
static void
commit_batch_work(PassState *pass)
{
	job_require_column_lock(pass->job, pass->target);
	commit_transaction();
}

/*
 * A round of a batch split into HOT rounds (iterate.c) is done: record and
 * commit it like a batch, then prune the batch's pages at once, so that the
 * next round's new row versions fit on the pages of the old ones.
 */
static void
finish_round(PassState *pass, BatchAttempt *attempt)
{
	const FreedBlocks *ranges;
	int			nranges;
	TransactionId xid = GetTopTransactionIdIfAny();

	record_round(pass, attempt->filled);
	commit_batch_work(pass);
	if (attempt->filled > 0)
		replica_lag_note_commit();
	count_rows_filled(pass, attempt->filled);
	if (attempt->filled > 0 && (nranges = iterator_freed_ranges(pass->it, &ranges)) > 0)
	{
		wait_for_round_horizon(pass, xid);
		prune_between_rounds(pass->target, ranges, nranges);
	}
}

/*
 * One batch in its own transaction, or, split into HOT rounds, in one
 * transaction per round; false when the pass has no range left.  *filled
 * is the number of rows it wrote.
 */
static bool
run_one_batch(PassState *pass, int64 *filled)
{
	BatchAttempt attempt = {pass->it, pass->job, false, 0, 0};
	const FreedBlocks *freed;
	int			nfreed;
	TimestampTz started = 0;
	double		batch_ms;
	int			size = iterator_batch_size(pass->it);
	bool		retried = false;
	int64		rounds_filled = 0;

	prepare_error_position(pass);
	wait_for_replicas(pass->target, pass->opts->max_replica_lag_ms,
					  pass->opts->max_replica_wait_ms, &pass->stats->replica_wait_ms);
	for (;;)
	{
		if (attempt_batch_update(pass, &attempt, &started) > 1)
		{
			/* a retry started the batch over: its rounds before are counted */
			retried = true;
		}
		if (!attempt.ran || !iterator_round_pending(pass->it))
			break;
		finish_round(pass, &attempt);
		rounds_filled += attempt.filled;
	}
	if (attempt.ran)
		record_batch(pass, &attempt);
	commit_batch_work(pass);
	if (attempt.filled > 0)
		replica_lag_note_commit();
	/* a retry shrank this batch only; the next ones keep their size */
	if (retried)
		iterator_set_batch_size(pass->it, size);
	*filled = rounds_filled + attempt.filled;
	if (!attempt.ran)
		return false;
	batch_ms = (double) (GetCurrentTimestamp() - started) / 1000.0;

	/* the old versions are dead now that the batch committed */
	if (*filled > 0 && (nfreed = iterator_freed_ranges(pass->it, &freed)) > 0)
		queue_freed_space(pass, freed, nfreed);

	pass->stats->batches++;
	pass->stats->most_in_a_batch = Max(pass->stats->most_in_a_batch, *filled);
	count_rows_filled(pass, attempt.filled);
	if (pass->sweep == 0)
	{
		pass->stats->rows_scanned += attempt.scanned;
		record_batch_time(pass, batch_ms);
		adapt_batch_size(pass, batch_ms);
	}
	if (pass->link)
	{
		pass->link->progress->rows_scanned = pass->stats->rows_scanned;
		pass->link->progress->batches = pass->stats->batches;
	}
	return true;
}

/*
 * safe_update's round left a row that still matches the predicate
 * (iterate.c, require_rows_left_behind): the round was rolled back, and the
 * batch and the rest run whole.  No wait and no smaller batch: no lock was
 * in the way.
 */
static void
stop_hot_rounds(PassState *pass)
{
	ereport(NOTICE,
			(errmsg("%s: %s: batches are not split into HOT rounds: a row the set list changes can still match the predicate",
					pass->target->change.procname, pass->target->display),
			 errdetail("A batch redone after an error between its rounds would change such a row again; each batch now runs as one statement, and no row was changed twice."),
			 errhint("A predicate that the set list makes false, such as SET c = f(x) WHERE c IS DISTINCT FROM f(x), keeps the rounds and their HOT updates.")));
	pass->hot_rounds = 1;
	/* and the passes after this one (a parallel worker's next range) */
	pass->target->run.rounds_abandoned = true;
	commit_transaction();
}

/*
 * Split the main pass's batches into HOT rounds (iterate.c), unless no
 * update of the column can be HOT: then the rounds would only add commits.
 * Sweeps write little and run plain batches.
 */
static void
choose_hot_rounds(PassState *pass)
{
	int			rounds = pass->sweep > 0 || pass->target->run.rounds_abandoned ? 1 :
		safe_backfill_hot_rounds;
	char	   *why = rounds > 1 ? hot_update_blocker(pass->target) : NULL;

	if (why)
	{
		ereport(DEBUG1,
				(errmsg("safe_backfill: %s: one round per batch, no HOT rounds: %s",
						pass->target->display, why),
				 errdetail("No update of the column can be HOT, so splitting batches into rounds would only add commits.")));
		rounds = 1;
	}
	else if (rounds > 1)
		ereport(DEBUG1,
				(errmsg("safe_backfill: %s: batches in up to %d HOT rounds",
						pass->target->display, rounds)));
	pass->hot_rounds = rounds;
	iterator_set_hot_rounds(pass->it, rounds);
}

int64
run_pass(BackfillTarget *target, BatchIterator *it, BackfillStats *stats,
		 int sweep, const BackfillOptions *opts, BackfillJob *job, const WorkerLink *link)
{
	PassState	pass = {target, {{0, 0}}, 0, it, stats, opts, job, link, sweep, 0,
	CurrentMemoryContext, NULL};
	ErrorContextCallback errcb;
	MemoryContext batch_cxt;
	int64		filled;
	bool		more = true;

	pass.last_recorded = GetCurrentTimestamp();
	initStringInfo(&pass.where);
	choose_hot_rounds(&pass);
	prepare_error_position(&pass);
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
		more = !(link && *link->stop) && run_one_batch(&pass, &filled);
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
	record_skipped_batches(&pass);

	error_context_stack = errcb.previous;
	pfree(pass.where.data);
	if (pass.own_it)
		iterator_free(pass.own_it);
	MemoryContextDelete(batch_cxt);
	return pass.pass_filled;
}

/*
 * The NULLs left where the UPDATEs reach, counted by one statement with a
 * snapshot of its own, taken after every batch committed: a row a concurrent
 * UPDATE moves while the count runs is seen exactly once.  The lock on the
 * OID comes first, so the name counted is our table's, and the column is
 * checked as before a batch.
 */
static int64
count_nulls_left(BackfillTarget *target)
{
	recheck_target_with_lock(target, AccessShareLock);
	/* rows an expression gives NULL for are left NULL, and counted apart */
	if (target->written.expression)
		return count_computable_nulls(target);
	/* not read-only: SPI then takes a new snapshot for the statement */
	return run_count_query(sql_count_matching_rows(target), false, "the NULLs left");
}

/*
 * safe_update and safe_delete have no sweeps: each row that matched when its
 * batch ran was changed once, and a row that matches later (changed behind
 * the walk, or still matching after its update) is not the run's to change
 * again.  Count those with a fresh snapshot, for the summary.  A dry run
 * counts nothing more.
 */
static void
count_rows_still_matching(RunContext *run)
{
	BackfillTarget *target = run->target;

	target->run.matching_left = -1;
	/* without a predicate every row matches: a count would say nothing */
	if (target->change.dry_run || target->change.where_tree == NULL)
		return;
	recheck_target_with_lock(target, AccessShareLock);
	run_tree_counts(target, sql_count_matching_rows(target), "the rows that still match",
					&target->run.matching_left, 1);
	commit_transaction();
}

/*
 * Whether an UPDATE of the table can leave a row it reaches unchanged: only
 * a trigger (BEFORE UPDATE returning NULL) or a rule can.  Partitions have
 * triggers of their own.
 */
static bool
update_can_skip_rows(BackfillTarget *target)
{
	List	   *rels = lappend_oid(storage_relations(target->relid), target->relid);
	ListCell   *lc;

	foreach(lc, rels)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(lfirst_oid(lc)));
		bool		can_skip;

		if (!HeapTupleIsValid(tup))
			continue;
		can_skip = ((Form_pg_class) GETSTRUCT(tup))->relhastriggers ||
			((Form_pg_class) GETSTRUCT(tup))->relhasrules;
		ReleaseSysCache(tup);
		if (can_skip)
			return true;
	}
	return false;
}

/*
 * Two sweeps in a row reached these rows and wrote none of them, and no
 * other session put them back in between: the UPDATE itself skips them.
 */
static void
report_rows_skipped(BackfillTarget *target, BackfillStats *stats, int64 nulls)
{
	ereport(ERROR,
			(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
			 errmsg("safe_backfill: %s: " INT64_FORMAT " rows are still NULL because the UPDATE skipped them",
					target->display, nulls),
			 errdetail("Two sweeps over the whole table reached these rows and changed none of them: a BEFORE UPDATE trigger that returns NULL, or a rule, skips them. The " INT64_FORMAT " rows filled are committed and kept; the run is recorded as failed, not done.",
					   stats->rows_filled),
			 errhint("Look at the triggers and rules on table \"%s\" and let them pass these rows, then call safe_backfill again; it fills only the rows still NULL.",
					 target->relname)));
}

/*
 * A pass cannot see rows that were not committed when its range went by:
 * an insert that commits late, a row a concurrent UPDATE moved behind a ctid
 * range, or a row set back to NULL.  So after the main pass, sweep the whole
 * table (the strategy's sweep: by block ranges here, every shard on its node
 * for Citus) until a sweep finds nothing left to fill; then count the NULLs
 * left with a fresh snapshot.  None: the run is done.  Some: sweep again; if
 * that sweep too writes nothing while the count still finds NULLs, the
 * UPDATE skips those rows (a trigger or a rule), and sweeping on would never
 * end: fail with the count.  Every path ends its run here.
 */
void
sweep_until_clean(RunContext *run, const RunStrategy *strategy, BackfillJob *job)
{
	BackfillTarget *target = run->target;
	BackfillStats *stats = &run->stats;
	bool		nulls_after_empty_sweep = false;

	if (target->change.kind != CHANGE_FILL)
	{
		count_rows_still_matching(run);
		return;
	}
	for (;;)
	{
		int64		filled;
		int64		nulls;

		if (stats->sweeps >= strategy->max_sweeps)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("safe_backfill: %s: rows with NULL keep appearing",
							target->display),
					 errdetail("%d %s each found new NULL values; " INT64_FORMAT " rows were filled and committed.",
							   stats->sweeps, strategy->sweeps_noun, stats->rows_filled),
					 errhint("Something keeps writing NULL into column %s. Give the column a default (%s) or change the application, then call safe_backfill again.",
							 target->display, sql_hint_set_default(target))));

		stats->sweeps++;
		filled = strategy->sweep(run, job, stats->sweeps);
		if (filled > 0)
		{
			nulls_after_empty_sweep = false;
			continue;
		}
		nulls = count_nulls_left(target);
		commit_transaction();
		if (nulls == 0)
			break;
		if (nulls_after_empty_sweep)
			report_rows_skipped(target, stats, nulls);
		/* without a trigger or rule nothing skips rows: they are new ones */
		nulls_after_empty_sweep = filled == 0 && update_can_skip_rows(target);
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

/* "N batches, s, rows/s; batch time p50, p99": how the batches went, for a summary */
static void
append_batches_detail(StringInfo detail, BackfillStats *stats, double seconds)
{
	if (stats->rows_filled > 0)
		appendStringInfo(detail, ", %.0f rows/s",
						 seconds > 0 ? stats->rows_filled / seconds : 0.0);
	/* batch times are this session's; a parallel main pass has none here */
	if (stats->ntimes > 0)
		appendStringInfo(detail, "; batch time p50 %.1f ms, p99 %.1f ms",
						 batch_time_percentile(stats, 0.5),
						 batch_time_percentile(stats, 0.99));
}

/* safe_update's and safe_delete's summary, or their dry run's. */
static void
report_change_summary(BackfillTarget *target, BackfillStats *stats)
{
	double		seconds = seconds_since(stats->started);
	StringInfoData detail;
	int64		left = target->run.matching_left;

	initStringInfo(&detail);
	appendStringInfo(&detail, INT64_FORMAT " batches, %.2f s", stats->batches, seconds);
	append_batches_detail(&detail, stats, seconds);
	if (target->change.dry_run)
	{
		/* a parallel run's batches are its workers': the fullest is not known here */
		if (stats->most_in_a_batch > 0)
			appendStringInfo(&detail, "; the fullest batch would change " INT64_FORMAT " %s",
							 stats->most_in_a_batch, stats->most_in_a_batch == 1 ? "row" : "rows");
		appendStringInfoString(&detail, ". Each batch's rows were counted as its statement would have found them then; rows that change before the real run may count differently.");
		ereport(NOTICE,
				(errmsg("%s: %s: dry run: " INT64_FORMAT " %s match; nothing was changed",
						target->change.procname, target->display, stats->rows_filled,
						stats->rows_filled == 1 ? "row" : "rows"),
				 errdetail_internal("%s", detail.data)));
		return;
	}
	if (left == 0)
		appendStringInfoString(&detail, ". After the last batch, a count with a fresh snapshot found no row that matches.");
	else if (left > 0)
		appendStringInfo(&detail, ". After the last batch, a count with a fresh snapshot found " INT64_FORMAT " %s that %s: written behind the walk while it ran, or still matching after %s update; they were not changed again.",
						 left, left == 1 ? "row" : "rows", left == 1 ? "matches" : "match",
						 left == 1 ? "its" : "their");
	if (target->change.kind == CHANGE_DELETE && target->run.pages_pruned > 0)
		appendStringInfo(&detail, " The " INT64_FORMAT " pages the batches deleted from were pruned behind the walk and have %.1f MB free, recorded in the free space map for new rows.",
						 target->run.pages_pruned,
						 (double) target->run.free_recorded / (1024.0 * 1024.0));
	ereport(NOTICE,
			(errmsg("%s: %s: %s " INT64_FORMAT " %s", target->change.procname,
					target->display, change_verb(target), stats->rows_filled,
					stats->rows_filled == 1 ? "row" : "rows"),
			 errdetail_internal("%s", detail.data)));
}

void
report_summary(BackfillTarget *target, BackfillStats *stats)
{
	double		seconds = seconds_since(stats->started);
	StringInfoData detail;

	if (target->change.kind != CHANGE_FILL)
	{
		report_change_summary(target, stats);
		return;
	}
	initStringInfo(&detail);
	appendStringInfo(&detail, INT64_FORMAT " batches including %d %s of the table, %.2f s",
					 stats->batches, stats->sweeps, stats->sweeps == 1 ? "sweep" : "sweeps",
					 seconds);
	append_batches_detail(&detail, stats, seconds);
	appendStringInfo(&detail, ". After the last batch, a count of the whole table with a fresh snapshot found no NULL in column \"%s\"",
					 target->colname);
	if (target->has_children)
		appendStringInfoString(&detail, " of the parent table (its inheritance children were not filled)");
	if (target->written.expression)
		appendStringInfoString(&detail, " for which the expression gives a value");
	if (target->written.expression && target->run.expression_nulls > 0)
		appendStringInfo(&detail, "; the " INT64_FORMAT " %s where it gives NULL %s NULL (they were not written)",
						 target->run.expression_nulls,
						 target->run.expression_nulls == 1 ? "row" : "rows",
						 target->run.expression_nulls == 1 ? "stays" : "stay");
	appendStringInfoString(&detail, "; rows written later with NULL are not covered: a default or NOT NULL keeps them out.");

	if (target->written.expression && target->run.expression_nulls > 0)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: filled " INT64_FORMAT " rows; " INT64_FORMAT " %s: the expression gave NULL",
						target->display, stats->rows_filled, target->run.expression_nulls,
						target->run.expression_nulls == 1 ? "row" : "rows"),
				 errdetail_internal("%s", detail.data)));
	else if (stats->rows_filled == 0)
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
			  const BackfillOptions *opts, const WorkerLink *link)
{
	run_pass(target, it, stats, 0, opts, NULL, link);
	return iterator_finished(it);
}

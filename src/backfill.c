/*
 * backfill.c
 *		A run on one node, from start to end: resume or start over, the main
 *		pass (serial, or parallel workers), the sweeps, the record and the
 *		summary; a distributed Citus table goes to citus.c instead.
 */
#include "safe_backfill.h"
#include "src/backfill.h"
#include "src/citus.h"
#include "src/iterate.h"
#include "src/jobs.h"
#include "src/keys.h"
#include "src/locking.h"
#include "src/parallel.h"
#include "src/pass.h"
#include "src/replicas.h"
#include "src/settings.h"
#include "src/space.h"
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

/*
 * A saved position that cannot be used any more (the key's type changed,
 * the text no longer parses, a parallel range's key is too long for a
 * worker's slot), or the caller's resume => false: start the run over.
 */
static void
start_over(BackfillTarget *target, BackfillJob *job, JobPosition *pos,
		   const char *why)
{
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: run " INT64_FORMAT " starts over from the beginning of the table: %s",
					target->display, job_id(job), why),
			 errdetail("Only rows still NULL are written, so rows filled before are read again but not changed.")));
	job_forget_position(job);
	commit_transaction();
	memset(pos, 0, sizeof(JobPosition));
}

/* Read the saved position back into the iterator, in a subtransaction. */
typedef struct ResumeAttempt
{
	BatchIterator *it;
	const JobPosition *pos;
	char	   *where;
} ResumeAttempt;

static void
resume_action(void *arg)
{
	ResumeAttempt *attempt = (ResumeAttempt *) arg;

	attempt->where = iterator_resume(attempt->it, attempt->pos);
}

/* Parse a saved key (a text[] literal) with the key's current types. */
typedef struct KeyTextCheck
{
	BackfillTarget *target;
	const char *literal;
} KeyTextCheck;

static void
parse_key_text_action(void *arg)
{
	KeyTextCheck *check = (KeyTextCheck *) arg;

	(void) canonical_key_from_literal(check->target, check->literal);
}

/* NULL if every saved key of the unfinished ranges can be used, else why not. */
static char *
unusable_range_key(BackfillTarget *target, BackfillJob *job)
{
	JobRange   *ranges;
	int			n = job_load_ranges(job, &ranges);
	int			i;

	for (i = 0; i < n; i++)
	{
		const char *keys[2] = {ranges[i].last_key, ranges[i].end_key};
		int			k;

		for (k = 0; k < 2; k++)
		{
			KeyTextCheck check = {target, keys[k]};
			ErrorData  *edata;

			if (keys[k] == NULL)
				continue;
			if (!try_in_subtransaction(parse_key_text_action, &check, &edata))
				return psprintf("the saved key of parallel range %d no longer fits the primary key: %s",
								ranges[i].range_no, edata->message);
		}
	}
	return NULL;
}

/*
 * Where a resumed serial run goes on, for the NOTICE; NULL when its saved
 * position was unusable and the run starts over.
 */
static char *
resume_serial_position(BackfillTarget *target, BackfillJob *job, BatchIterator *it,
					   JobPosition *pos)
{
	ResumeAttempt attempt = {it, pos, NULL};
	ErrorData  *edata;

	if (pos->sweeping)
		return pstrdup("the main pass");
	if (try_in_subtransaction(resume_action, &attempt, &edata))
		return attempt.where;
	start_over(target, job, pos,
			   psprintf("its saved position no longer fits the primary key: %s", edata->message));
	return NULL;
}

/* workers => n cannot split a serial main pass that is half done. */
static void
note_workers_ignored(BackfillTarget *target, BackfillJob *job, const BackfillOptions *opts)
{
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: workers => %d is ignored: run " INT64_FORMAT " resumes its serial main pass in this session",
					target->display, opts->workers, job_id(job)),
			 errhint("To split the table across workers, call safe_backfill with resume => false; the rows filled so far are kept.")));
}

static void
backfill_with_job(BackfillTarget *target, const BackfillOptions *opts,
				  BackfillStats *stats, BackfillJob *job, BatchIterator *it,
				  JobPosition *pos)
{
	bool		parallel_run;
	int			ranges = 0;
	int64		counted;

	if (pos->resumed && !opts->resume)
		start_over(target, job, pos, "resume => false");
	parallel_run = pos->resumed && !pos->sweeping && job_has_ranges(job);
	/*
	 * workers => 1 means this session: the advice for an expression whose
	 * function reads a temporary table, which no worker can read.
	 */
	if (parallel_run && opts->workers <= 1)
	{
		start_over(target, job, pos, "workers => 1 fills the parallel run's ranges in this session");
		parallel_run = false;
	}
	if (parallel_run)
	{
		char	   *why = unusable_range_key(target, job);

		if (why)
		{
			start_over(target, job, pos, why);
			parallel_run = false;
		}
		else
		{
			ranges = parallel_unfinished_ranges(job);
			/* the job row may lag behind its ranges: a crash stopped the leader */
			counted = job_count_ranges(job);
			if (counted >= 0)
				pos->rows_done = counted;
			commit_transaction();
		}
	}

	if (parallel_run)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: resuming run " INT64_FORMAT ", %d of its parallel ranges unfinished, each from where it stopped; " INT64_FORMAT " rows were filled before",
						target->display, job_id(job), ranges, pos->rows_done)));
	else if (pos->resumed)
	{
		char	   *where = resume_serial_position(target, job, it, pos);

		if (where)
		{
			report_resume(target, job, pos, where);
			if (opts->workers > 1 && !pos->sweeping)
				note_workers_ignored(target, job, opts);
		}
	}
	if (!pos->sweeping)
	{
		/*
		 * A parallel run resumes its unfinished ranges (none left: straight
		 * to the sweep); a serial one where it stopped.
		 */
		if ((parallel_run || (opts->workers > 1 && !pos->resumed)) &&
			run_parallel_main_pass(target, opts, stats, iterator_by_ctid(it), job, parallel_run))
		{
			/*
			 * the workers recorded their ranges: the job counts what they
			 * committed, and the pass is done
			 */
			(void) job_count_ranges(job);
			job_record_batch(job, "sweep", NULL, InvalidBlockNumber, 0, 0, 0);
			commit_transaction();
		}
		else
			run_pass(target, it, stats, 0, opts, job, NULL);
	}
	iterator_free(it);

	sweep_until_clean(target, stats, opts, job);
	job_finish(job, NULL);
	commit_transaction();
	report_summary(target, stats);
}

/* run_backfill's body: the passes of a single-node run. */
typedef struct SingleNodeRun
{
	BackfillTarget *target;
	const BackfillOptions *opts;
	BackfillStats *stats;
	BatchIterator *it;
} SingleNodeRun;

static void
single_node_body(BackfillJob *job, JobPosition *pos, void *arg)
{
	SingleNodeRun *run = (SingleNodeRun *) arg;

	backfill_with_job(run->target, run->opts, run->stats, job, run->it, pos);
}

void
run_backfill(BackfillTarget *target, const BackfillOptions *opts)
{
	BackfillStats stats = {0};
	BatchIterator *it;
	SingleNodeRun run;

	/* a distributed Citus table is filled shard by shard on its nodes */
	if (citus_backfill(target, opts))
		return;

	stats.started = GetCurrentTimestamp();
	stats.last_report = stats.started;
	replica_lag_reset();

	if (target->has_children)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: inheritance children are not filled",
						target->display),
				 errhint("Call safe_backfill on each child table too.")));

	stats.estimated_rows = estimate_table_rows(target->relid);
	if (target->nkeys > 0 && safe_backfill_iteration != ITERATE_CTID)
		it = iterator_create_keyset(target, opts->batch_size, stats.estimated_rows);
	else
	{
		require_heap_for_ctid(target);
		it = iterator_create_ctid(target, opts->batch_size, stats.estimated_rows);
	}

	run.target = target;
	run.opts = opts;
	run.stats = &stats;
	run.it = it;
	run_in_job(target, opts, iterator_by_ctid(it), stats.estimated_rows,
			   single_node_body, &run);
}

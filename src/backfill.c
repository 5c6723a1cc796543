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
#include "src/locking.h"
#include "src/parallel.h"
#include "src/pass.h"
#include "src/serial.h"
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
			(errmsg("%s: %s: resuming run " INT64_FORMAT " %s, after %s; " INT64_FORMAT " rows were %s before",
					target->change.procname, target->display, job_id(job),
					pos->sweeping ? "at its sweep" : "in its main pass", where,
					pos->rows_done, change_verb(target))));
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
			(errmsg("%s: %s: run " INT64_FORMAT " starts over from the beginning of the table: %s",
					target->change.procname, target->display, job_id(job), why),
			 target->change.kind == CHANGE_FILL ?
			 errdetail("Only rows still NULL are written, so rows filled before are read again but not changed.") :
			 errdetail("Rows changed before that still match are changed again.")));
	job_forget_position(job);
	commit_transaction();
	memset(pos, 0, sizeof(JobPosition));
}

/* Read the saved position back into the iterator, in a subtransaction. */
typedef struct ResumeAttempt
{
	BackfillJob *job;
	BatchIterator *it;
	const JobPosition *pos;
	char	   *where;
} ResumeAttempt;

static void
resume_action(void *arg)
{
	ResumeAttempt *attempt = (ResumeAttempt *) arg;
	Datum	   *key = iterator_by_ctid(attempt->it) ? NULL : job_saved_key(attempt->job, attempt->pos);

	attempt->where = iterator_resume(attempt->it, attempt->pos, key);
}

static void
load_ranges_action(void *arg)
{
	JobRange   *ranges;

	(void) job_load_ranges((BackfillJob *) arg, &ranges);
}

/* NULL if every saved key of the unfinished ranges can be used, else why not. */
static char *
unusable_range_key(BackfillJob *job)
{
	ErrorData  *edata;

	if (try_in_subtransaction(load_ranges_action, job, &edata))
		return NULL;
	return edata->message;
}

/*
 * Where a resumed serial run goes on, for the NOTICE; NULL when its saved
 * position was unusable and the run starts over.
 */
static char *
resume_serial_position(RunContext *run, BackfillJob *job, JobPosition *pos)
{
	ResumeAttempt attempt = {job, run->it, pos, NULL};
	ErrorData  *edata;

	if (pos->sweeping)
		return pstrdup("the main pass");
	if (try_in_subtransaction(resume_action, &attempt, &edata))
		return attempt.where;
	start_over(run->target, job, pos,
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

/*
 * Why the unfinished ranges of an earlier run cannot be resumed, or NULL.
 * workers => 1 means this session: the advice for an expression whose
 * function reads a temporary table, which no worker can read.
 */
static char *
ranges_not_resumable(RunContext *run, BackfillJob *job, bool distributed)
{
	if (distributed)
		return NULL;
	if (run->opts->workers <= 1)
		return pstrdup("workers => 1 fills the parallel run's ranges in this session");
	return unusable_range_key(job);
}

static void
report_resumed_ranges(RunContext *run, BackfillJob *job, const JobPosition *pos,
					  const RunStrategy *ranges_strategy)
{
	JobRange   *ranges;
	int			unfinished = job_load_ranges(job, &ranges);

	if (ranges_strategy->ranges_count_rows)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: resuming run " INT64_FORMAT ", %d of its %s unfinished, each from where it stopped; " INT64_FORMAT " rows were filled before",
						run->target->display, job_id(job), unfinished,
						ranges_strategy->ranges_noun, pos->rows_done)));
	else
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: resuming run " INT64_FORMAT ", %d of its %s unfinished, each from where it stopped",
						run->target->display, job_id(job), unfinished,
						ranges_strategy->ranges_noun)));
}

/*
 * What this run goes on from, for every path: nothing (a new run, or
 * resume => false, or a saved position that no longer fits), the unfinished
 * ranges (or shards) of an interrupted run, the saved position of a serial
 * one (run->it is then positioned after it), or its sweep.  Says so in a
 * NOTICE.
 */
static ResumeKind
decide_resume(RunContext *run, BackfillJob *job, JobPosition *pos,
			  const RunStrategy *ranges_strategy, bool distributed)
{
	BackfillTarget *target = run->target;
	char	   *why;
	char	   *where;

	if (!pos->resumed)
		return RESUME_NONE;
	if (!run->opts->resume)
	{
		start_over(target, job, pos, "resume => false");
		return RESUME_NONE;
	}
	if (!pos->sweeping && job_has_ranges(job))
	{
		if ((why = ranges_not_resumable(run, job, distributed)) != NULL)
		{
			start_over(target, job, pos, why);
			return RESUME_NONE;
		}
		/* the job row may lag behind its ranges: a crash stopped the leader */
		if (ranges_strategy->ranges_count_rows)
		{
			int64		counted = job_count_ranges(job);

			if (counted >= 0)
				pos->rows_done = counted;
		}
		report_resumed_ranges(run, job, pos, ranges_strategy);
		commit_transaction();
		return RESUME_RANGES;
	}
	if (distributed)
	{
		start_over(target, job, pos, "it had not recorded its shards");
		return RESUME_NONE;
	}
	if ((where = resume_serial_position(run, job, pos)) == NULL)
		return RESUME_NONE;
	report_resume(target, job, pos, where);
	if (pos->sweeping)
		return RESUME_SWEEP;
	if (run->opts->workers > 1)
		note_workers_ignored(target, job, run->opts);
	return RESUME_POSITION;
}

/*
 * The one place a run's strategy is chosen: a distributed Citus table's was
 * chosen before the job (distributed); on one node, parallel workers resume
 * the ranges of a parallel run or start a new one with workers => n, and
 * this session goes on from anything else.
 */
static const RunStrategy *
choose_strategy(const RunContext *run, const RunStrategy *distributed, ResumeKind resume)
{
	if (distributed)
		return distributed;
	if (resume == RESUME_RANGES ||
		(resume == RESUME_NONE && run->opts->workers > 1))
		return &parallel_strategy;
	return &serial_strategy;
}

/* run_backfill's body, in the column's job: the same steps on every path. */
typedef struct RunInJob
{
	RunContext *run;
	const RunStrategy *distributed;
} RunInJob;

static void
run_body(BackfillJob *job, JobPosition *pos, void *arg)
{
	RunInJob   *rj = (RunInJob *) arg;
	RunContext *run = rj->run;
	const RunStrategy *ranges_strategy = rj->distributed ? rj->distributed : &parallel_strategy;
	ResumeKind	resume = decide_resume(run, job, pos, ranges_strategy, rj->distributed != NULL);
	const RunStrategy *strategy = choose_strategy(run, rj->distributed, resume);

	if (resume != RESUME_SWEEP)
		(void) strategy->main_pass(run, job, resume);
	if (run->it)
		iterator_free(run->it);
	run->it = NULL;

	sweep_until_clean(run, strategy, job);
	job_finish(job, NULL);
	commit_transaction();
	if (strategy->summary)
		strategy->summary(run);
	else
		report_summary(run->target, &run->stats);
}

/* A single node's walk: by primary key, or by block ranges. */
static BatchIterator *
create_main_iterator(RunContext *run)
{
	BackfillTarget *target = run->target;

	/* safe_update walks by key whatever the setting: see change.c */
	if (target->nkeys > 0 && (safe_backfill_iteration != ITERATE_CTID ||
							  target->change.kind == CHANGE_UPDATE))
		return iterator_create_keyset(target, run->opts->batch_size, run->stats.estimated_rows);
	require_heap_for_ctid(target);
	return iterator_create_ctid(target, run->opts->batch_size, run->stats.estimated_rows);
}

void
run_backfill(BackfillTarget *target, const BackfillOptions *opts)
{
	RunContext *run = palloc0(sizeof(RunContext));
	RunInJob	rj;

	run->target = target;
	run->opts = opts;
	run->stats.started = GetCurrentTimestamp();
	run->stats.last_report = run->stats.started;
	replica_lag_reset();

	/* a distributed Citus table is filled shard by shard on its nodes */
	rj.run = run;
	rj.distributed = citus_strategy_for(run);
	if (rj.distributed == NULL)
	{
		if (target->has_children)
			ereport(NOTICE,
					(errmsg("%s: %s: inheritance children are not %s",
							target->change.procname, target->display, change_verb(target)),
					 errhint("Call %s on each child table too.", target->change.procname)));
		run->stats.estimated_rows = estimate_table_rows(target->relid);
		run->it = create_main_iterator(run);
	}
	run_in_job(target, opts, run->it ? iterator_by_ctid(run->it) : false,
			   run->stats.estimated_rows, run_body, &rj);
}

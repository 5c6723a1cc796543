/*
 * jobs.h
 *		The jobs tables: record, resume, lock the column, the ranges of parallel runs.
 */
#ifndef SAFE_BACKFILL_JOBS_H
#define SAFE_BACKFILL_JOBS_H

#include "safe_backfill.h"

#include "storage/lock.h"

extern void run_in_job(BackfillTarget *target, const BackfillOptions *opts, bool by_ctid,
					   double estimated_rows, JobBody body, void *arg);
extern BackfillJob *job_start(BackfillTarget *target, Oid procoid, bool by_ctid,
							  double estimated_rows, JobPosition *pos);
extern int64 job_id(BackfillJob *job);
extern Datum *job_saved_key(BackfillJob *job, const JobPosition *pos);
extern void job_record_batch(BackfillJob *job, const char *phase, Datum *key,
							 BlockNumber block, int64 filled, int64 scanned,
							 int64 batches);
extern int64 job_count_ranges(BackfillJob *job);
extern void job_ranges_take_counts(BackfillJob *job);
extern void job_drop_ranges(BackfillJob *job);
extern int64 jobs_forget_finished(Oid procoid, Oid relid, Interval *older_than);
extern void job_lock_as_worker(Oid relid, AttrNumber attnum);
extern void job_finish(BackfillJob *job, const char *error);
extern void job_forget_position(BackfillJob *job);
extern void job_release(BackfillJob *job);
extern void job_require_column_lock(BackfillJob *job, BackfillTarget *target);
extern void job_insert_range(BackfillJob *job, int range_no, Datum *start_key,
							 Datum *end_key, BlockNumber start_block,
							 BlockNumber end_block);
extern void job_insert_shard_range(BackfillJob *job, int range_no, int64 shard_id);
extern int	job_load_ranges(BackfillJob *job, JobRange **ranges);
extern bool job_has_ranges(BackfillJob *job);
extern RangeRecorder *range_recorder(BackfillTarget *target, Oid nsp, int64 job_id,
									 int range_no);
extern void range_record_batch(RangeRecorder *r, Datum *key, BlockNumber block,
							   int64 filled, int64 scanned, int64 batches);
extern void range_record_done(RangeRecorder *r);


/*
 * A detached run (safe_backfill_start) as its job row and its
 * safe_backfill_detached row record it: what its worker runs, as whom, with
 * which settings ({name, value, ...}), and where it stands.
 */
typedef struct DetachedRun
{
	int64		id;
	char	   *state;
	Oid			relid;
	char	   *colname;
	char	   *value_text;
	char	   *expression;
	Oid			session_role;	/* the worker connects as this role */
	Oid			run_role;		/* and runs as this one (the caller's current user) */
	BackfillOptions opts;		/* the arguments' part of them */
	Datum		settings;		/* text[] */
	bool		cancel_requested;
	bool		alive;			/* a process works on it now */
	int64		rows_done;
	int64		rows_estimated;
	char	   *error;
	char	   *sqlstate;
	int			pid;
} DetachedRun;

extern int64 job_enqueue_detached(BackfillTarget *target, const DetachedRun *run);
extern bool job_load_detached(Oid procoid, int64 id, DetachedRun *run);
extern bool job_claim_detached(Oid procoid, int64 id);
extern void job_end_detached(Oid procoid, int64 id, const char *error, const char *sqlstate);
extern bool job_cancel_idle_detached(Oid procoid, int64 id);
extern List *jobs_detached_to_resume(Oid procoid);
extern void set_detached_lock_tag(LOCKTAG *tag, int64 id);

#endif							/* SAFE_BACKFILL_JOBS_H */

/*
 * pass.h
 *		A pass over the table in batches, the sweeps and the summary.
 */
#ifndef SAFE_BACKFILL_PASS_H
#define SAFE_BACKFILL_PASS_H

#include "safe_backfill.h"

extern bool progress_line_due(BackfillStats *stats);
extern void report_main_progress(BackfillTarget *target, BackfillStats *stats, double fraction,
								 double estimated, int nworkers);
extern bool run_main_pass(BackfillTarget *target, BatchIterator *it,
						  BackfillStats *stats, const BackfillOptions *opts,
						  const WorkerLink *link);
extern int64 run_pass(BackfillTarget *target, BatchIterator *it, BackfillStats *stats,
					  int sweep, const BackfillOptions *opts, BackfillJob *job,
					  const WorkerLink *link);
extern void sweep_until_clean(RunContext *run, const RunStrategy *strategy,
							  BackfillJob *job);
extern void report_summary(BackfillTarget *target, BackfillStats *stats);

#endif							/* SAFE_BACKFILL_PASS_H */

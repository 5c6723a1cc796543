/*
 * parallel.h
 *		The main pass split across background workers.
 */
#ifndef SAFE_BACKFILL_PARALLEL_H
#define SAFE_BACKFILL_PARALLEL_H

#include "safe_backfill.h"

extern bool run_parallel_main_pass(BackfillTarget *target, const BackfillOptions *opts,
								   BackfillStats *stats, bool by_ctid, BackfillJob *job,
								   bool resumed);
extern int	parallel_unfinished_ranges(BackfillJob *job);

#endif							/* SAFE_BACKFILL_PARALLEL_H */

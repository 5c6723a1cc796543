/*
 * serial.c
 *		The serial strategy: this session walks the table in batches, by
 *		primary key or by block ranges (iterate.c), from the start or from
 *		where an earlier run stopped; its sweeps walk the whole table by
 *		block ranges.  The parallel strategy sweeps the same way.
 */
#include "safe_backfill.h"
#include "src/iterate.h"
#include "src/pass.h"
#include "src/serial.h"

/* run->it was positioned by the resume decision, if the run resumes */
static bool
serial_main_pass(RunContext *run, BackfillJob *job, ResumeKind resume)
{
	(void) resume;
	run_pass(run->target, run->it, &run->stats, 0, run->opts, job, NULL);
	return true;
}

int64
serial_sweep(RunContext *run, BackfillJob *job, int sweep)
{
	BatchIterator *it = iterator_create_sweep(run->target, run->opts->batch_size,
											  run->stats.estimated_rows);
	int64		filled = run_pass(run->target, it, &run->stats, sweep, run->opts, job, NULL);

	iterator_free(it);
	return filled;
}

const RunStrategy serial_strategy = {
	.ranges_noun = "ranges",
	.ranges_count_rows = true,
	.sweeps_noun = "sweeps over the table",
	.max_sweeps = SAFE_BACKFILL_MAX_SWEEPS,
	.main_pass = serial_main_pass,
	.sweep = serial_sweep,
	.summary = NULL,
};

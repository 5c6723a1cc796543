/*
 * iterate.h
 *		Walk the table in batches: by primary key, or by block ranges.
 */
#ifndef SAFE_BACKFILL_ITERATE_H
#define SAFE_BACKFILL_ITERATE_H

#include "safe_backfill.h"

extern BatchIterator *iterator_create_keyset(BackfillTarget *target, int batch_size,
											 double rows);
extern BatchIterator *iterator_create_ctid(BackfillTarget *target, int batch_size,
										   double rows);
extern BatchIterator *iterator_create_sweep(BackfillTarget *target, int batch_size,
											double rows);
extern bool iterator_run_batch(BatchIterator *it, int64 *rows_filled, int64 *rows_scanned);
extern bool iterator_finished(BatchIterator *it);
extern int	iterator_batch_size(BatchIterator *it);
extern void iterator_set_batch_size(BatchIterator *it, int rows);
extern int	iterator_freed_ranges(BatchIterator *it, const FreedBlocks **ranges);
extern bool iterator_by_ctid(BatchIterator *it);
extern Datum *iterator_position_key(BatchIterator *it);
extern BlockNumber iterator_position_block(BatchIterator *it);
extern char *iterator_resume(BatchIterator *it, const JobPosition *pos, Datum *key);
extern void iterator_start_after_key(BatchIterator *it, Datum *key);
extern void iterator_limit_keys(BatchIterator *it, Datum *key);
extern void iterator_limit_blocks(BatchIterator *it, BlockNumber start, BlockNumber end);
extern double iterator_fraction_done(BatchIterator *it);
extern double iterator_estimated_rows(BatchIterator *it);
extern char *iterator_describe_position(BatchIterator *it);
extern char *iterator_find_failing_row(BatchIterator *it, int sqlerrcode,
									   const char *message);
extern void iterator_set_hot_rounds(BatchIterator *it, int rounds);
extern bool iterator_round_pending(BatchIterator *it);
extern bool iterator_take_rounds_abandoned(BatchIterator *it);
extern void iterator_free(BatchIterator *it);

#endif							/* SAFE_BACKFILL_ITERATE_H */

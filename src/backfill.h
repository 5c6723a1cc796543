/*
 * backfill.h
 *		A run on one node, from start to end.
 */
#ifndef SAFE_BACKFILL_BACKFILL_H
#define SAFE_BACKFILL_BACKFILL_H

#include "safe_backfill.h"

extern void run_backfill(BackfillTarget *target, const BackfillOptions *opts);

#endif							/* SAFE_BACKFILL_BACKFILL_H */

/*
 * not_null.h
 *		safe_set_not_null: CHECK NOT VALID, VALIDATE, SET NOT NULL.
 */
#ifndef SAFE_BACKFILL_NOT_NULL_H
#define SAFE_BACKFILL_NOT_NULL_H

#include "safe_backfill.h"

extern int64 count_nulls(BackfillTarget *target);
extern bool validate_constraint(BackfillTarget *target, const char *conname, int violation,
								bool added);
extern void run_set_not_null(BackfillTarget *target, const LockPolicy *policy,
							 int drop_check);

#endif							/* SAFE_BACKFILL_NOT_NULL_H */

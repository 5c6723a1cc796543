/*
 * validate.h
 *		VALIDATE CONSTRAINT for safe_set_not_null, and the NULLs a failed
 *		one leaves.
 */
#ifndef SAFE_BACKFILL_VALIDATE_H
#define SAFE_BACKFILL_VALIDATE_H

#include "safe_backfill.h"

#define SET_NOT_NULL_PROCNAME "safe_set_not_null"

extern int64 count_nulls(BackfillTarget *target);
extern void report_nulls_left(BackfillTarget *target, const char *kind, const char *conname,
							  int64 nulls, bool removed);
extern bool drop_constraint_if_ours(BackfillTarget *target, Oid oid, const char *name,
									const LockPolicy *policy, double *held_ms);
extern bool validate_constraint(BackfillTarget *target, const char *conname, int violation,
								bool added);

#endif							/* SAFE_BACKFILL_VALIDATE_H */

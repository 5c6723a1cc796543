/*
 * validate.h
 *		VALIDATE CONSTRAINT for safe_set_not_null, and the NULLs a failed
 *		one leaves.
 */
#ifndef SAFE_BACKFILL_VALIDATE_H
#define SAFE_BACKFILL_VALIDATE_H

#include "safe_backfill.h"

extern int64 count_nulls(BackfillTarget *target);
extern bool validate_constraint(BackfillTarget *target, const char *conname, int violation,
								bool added);

#endif							/* SAFE_BACKFILL_VALIDATE_H */

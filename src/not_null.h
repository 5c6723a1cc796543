/*
 * not_null.h
 *		safe_set_not_null: CHECK NOT VALID, VALIDATE, SET NOT NULL.
 */
#ifndef SAFE_BACKFILL_NOT_NULL_H
#define SAFE_BACKFILL_NOT_NULL_H

#include "safe_backfill.h"

extern void run_set_not_null(BackfillTarget *target, const LockPolicy *policy,
							 int drop_check);

#endif							/* SAFE_BACKFILL_NOT_NULL_H */

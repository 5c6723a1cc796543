/*
 * not_null_native.h
 *		PostgreSQL 18's NOT NULL NOT VALID path of safe_set_not_null.
 */
#ifndef SAFE_BACKFILL_NOT_NULL_NATIVE_H
#define SAFE_BACKFILL_NOT_NULL_NATIVE_H

#include "safe_backfill.h"

extern bool set_not_null_natively(BackfillTarget *target, const LockPolicy *policy);

#endif							/* SAFE_BACKFILL_NOT_NULL_NATIVE_H */

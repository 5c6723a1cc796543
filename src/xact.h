/*
 * xact.h
 *		Commit and sleep, for every module.
 */
#ifndef SAFE_BACKFILL_XACT_H
#define SAFE_BACKFILL_XACT_H

#include "safe_backfill.h"

extern void commit_transaction(void);
extern void sleep_interruptibly(int ms);
extern double elapsed_ms(TimestampTz start);

#endif							/* SAFE_BACKFILL_XACT_H */

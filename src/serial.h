/*
 * serial.h
 *		The serial strategy: this session walks the table in batches.
 */
#ifndef SAFE_BACKFILL_SERIAL_H
#define SAFE_BACKFILL_SERIAL_H

#include "safe_backfill.h"

extern const RunStrategy serial_strategy;

extern int64 serial_sweep(RunContext *run, BackfillJob *job, int sweep);

#endif							/* SAFE_BACKFILL_SERIAL_H */

/*
 * parallel.h
 *		The main pass split across background workers.
 */
#ifndef SAFE_BACKFILL_PARALLEL_H
#define SAFE_BACKFILL_PARALLEL_H

#include "safe_backfill.h"

extern const RunStrategy parallel_strategy;

#endif							/* SAFE_BACKFILL_PARALLEL_H */

/*
 * citus.h
 *		Citus: distributed tables filled shard by shard on their nodes.
 */
#ifndef SAFE_BACKFILL_CITUS_H
#define SAFE_BACKFILL_CITUS_H

#include "safe_backfill.h"

extern const RunStrategy *citus_strategy_for(RunContext *run);

#endif							/* SAFE_BACKFILL_CITUS_H */

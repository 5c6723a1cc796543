/*
 * citus.h
 *		Citus: distributed tables filled shard by shard on their nodes.
 */
#ifndef SAFE_BACKFILL_CITUS_H
#define SAFE_BACKFILL_CITUS_H

#include "safe_backfill.h"

extern bool citus_backfill(BackfillTarget *target, const BackfillOptions *opts);

#endif							/* SAFE_BACKFILL_CITUS_H */

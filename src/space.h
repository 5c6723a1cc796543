/*
 * space.h
 *		Space reuse: pruning and the free space map.
 */
#ifndef SAFE_BACKFILL_SPACE_H
#define SAFE_BACKFILL_SPACE_H

#include "safe_backfill.h"

extern void reuse_freed_space(BackfillTarget *target, const FreedBlocks *ranges, int nranges);
extern void prune_between_rounds(BackfillTarget *target, const FreedBlocks *ranges, int nranges);
extern void require_heap_for_ctid(BackfillTarget *target);
extern char *hot_update_blocker(BackfillTarget *target);
extern bool table_horizon_passed(Oid relid, TransactionId xid);
extern char *describe_horizon_holder(TransactionId xid, int *pid);

#endif							/* SAFE_BACKFILL_SPACE_H */

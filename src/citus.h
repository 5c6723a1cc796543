/*
 * citus.h
 *		Citus: distributed tables filled shard by shard on their nodes.
 */
#ifndef SAFE_BACKFILL_CITUS_H
#define SAFE_BACKFILL_CITUS_H

#include "safe_backfill.h"

typedef enum CitusTableKind
{
	CITUS_TABLE_NONE,			/* not a Citus table (or no Citus) */
	CITUS_TABLE_DISTRIBUTED,	/* hash-distributed or single-shard: per shard */
	CITUS_TABLE_REFERENCE,		/* a copy on every node: coordinator batches */
	CITUS_TABLE_OTHER			/* Citus local, append or range tables */
} CitusTableKind;
extern bool citus_is_loaded(void);
extern CitusTableKind citus_table_kind(Oid relid);
extern bool citus_backfill(BackfillTarget *target, const BackfillOptions *opts);
extern bool citus_estimate_rows(Oid relid, double *rows);
extern void citus_set_local_lock_timeout(int ms);
extern bool citus_wait_for_shard_lock_holders(BackfillTarget *target, int timeout_ms,
											  char **holders);

#endif							/* SAFE_BACKFILL_CITUS_H */

/*
 * replicas.h
 *		Waiting for standbys to catch up.
 */
#ifndef SAFE_BACKFILL_REPLICAS_H
#define SAFE_BACKFILL_REPLICAS_H

#include "safe_backfill.h"

extern void replica_lag_reset(void);
extern void replica_lag_note_commit(void);
extern void require_replica_visibility(void);
extern void wait_for_replicas(BackfillTarget *target, int limit_ms, int max_wait_ms,
							  double *waited_ms);

#endif							/* SAFE_BACKFILL_REPLICAS_H */

/*
 * settings.h
 *		The safe_backfill.* settings.
 */
#ifndef SAFE_BACKFILL_SETTINGS_H
#define SAFE_BACKFILL_SETTINGS_H

#include "safe_backfill.h"

/* safe_backfill.iteration */
typedef enum IterationChoice
{
	ITERATE_AUTO,
	ITERATE_KEY,
	ITERATE_CTID
} IterationChoice;

/* the settings; define_settings() is called once, by _PG_init */
extern void define_settings(void);
extern int	safe_backfill_iteration;
extern int	safe_backfill_progress_interval_ms;
extern int	safe_backfill_lock_timeout_ms;
extern int	safe_backfill_max_lock_attempts;
extern bool safe_backfill_reuse_space;
extern bool safe_backfill_synchronous_commit;
extern int	safe_backfill_hot_rounds;
extern int	safe_backfill_job_retention_s;
extern bool safe_backfill_round_horizon_wait;
extern int	safe_backfill_citus_shards_per_node;
extern int	safe_backfill_target_batch_ms;
extern int	safe_backfill_batch_lock_timeout_ms;
extern int	safe_backfill_max_batch_retries;
extern int	safe_backfill_max_replica_lag_ms;
extern int	safe_backfill_max_replica_wait_ms;
extern int	safe_backfill_max_detached_runs;

#endif							/* SAFE_BACKFILL_SETTINGS_H */

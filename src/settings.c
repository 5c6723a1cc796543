/*
 * settings.c
 *		The safe_backfill.* settings (GUCs): their variables and their
 *		definitions, read by every module, defined once by _PG_init.
 */
#include "safe_backfill.h"
#include "src/settings.h"

#include "utils/guc.h"
#include "utils/timestamp.h"

int			safe_backfill_progress_interval_ms = 1000;
int			safe_backfill_iteration = ITERATE_AUTO;
int			safe_backfill_target_batch_ms = 200;
int			safe_backfill_batch_lock_timeout_ms = 1000;
int			safe_backfill_max_batch_retries = 10;
int			safe_backfill_max_replica_lag_ms = 0;
int			safe_backfill_max_replica_wait_ms = 10 * 60 * 1000;
bool		safe_backfill_synchronous_commit = false;
int			safe_backfill_hot_rounds = 8;
bool		safe_backfill_reuse_space = true;
int			safe_backfill_job_retention_s = 30 * SECS_PER_DAY;
int			safe_backfill_max_detached_runs = 4;
bool		safe_backfill_round_horizon_wait = true;
int			safe_backfill_citus_shards_per_node = 0;

static const struct config_enum_entry iteration_options[] = {
	{"auto", ITERATE_AUTO, false},
	{"key", ITERATE_KEY, false},
	{"ctid", ITERATE_CTID, false},
	{NULL, 0, false}
};
int			safe_backfill_lock_timeout_ms = 100;
int			safe_backfill_max_lock_attempts = 30;

/* Define every safe_backfill.* setting; called once, by _PG_init. */
void
define_settings(void)
{
	DefineCustomIntVariable("safe_backfill.progress_interval",
							"Minimum time between two progress NOTICEs of a running backfill.",
							"0 turns the progress lines off; the final summary is always sent.",
							&safe_backfill_progress_interval_ms,
							1000, 0, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("safe_backfill.lock_timeout",
							"Longest time an ACCESS EXCLUSIVE request of safe_set_not_null may wait in the lock queue.",
							"Other sessions queue behind a waiting ACCESS EXCLUSIVE request, so this bounds how long they can be held up.",
							&safe_backfill_lock_timeout_ms,
							100, 1, 60 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("safe_backfill.max_lock_attempts",
							"Attempts at each ACCESS EXCLUSIVE step before safe_set_not_null gives up.",
							"Attempts are spaced by an exponential backoff with jitter, up to 10 s apart.",
							&safe_backfill_max_lock_attempts,
							30, 1, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("safe_backfill.target_batch_ms",
							"Time each batch should take; batches shrink or grow toward it, never beyond batch_size.",
							"0 keeps every batch at batch_size rows.",
							&safe_backfill_target_batch_ms,
							200, 0, 60 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("safe_backfill.batch_lock_timeout",
							"Longest wait of a batch for row locks held by other transactions before it is rolled back and retried smaller.",
							"0 leaves the session's lock_timeout in effect.",
							&safe_backfill_batch_lock_timeout_ms,
							1000, 0, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("safe_backfill.max_batch_retries",
							"Retries of a batch that timed out on row locks or hit a deadlock, before safe_backfill gives up.",
							NULL,
							&safe_backfill_max_batch_retries,
							10, 0, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("safe_backfill.max_replica_lag",
							"Before each batch, wait while a standby replays this far behind.",
							"0 does not watch standbys.  The lag is the larger of pg_stat_replication.replay_lag and the age of the oldest batch commit the standby has not replayed.",
							&safe_backfill_max_replica_lag_ms,
							0, 0, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("safe_backfill.max_replica_wait",
							"Longest wait for standbys before one batch; then safe_backfill stops with an error.",
							NULL,
							&safe_backfill_max_replica_wait_ms,
							10 * 60 * 1000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("safe_backfill.iteration",
							 "How the main pass walks the table: auto, key or ctid.",
							 "auto walks the primary key when there is one and ranges of heap blocks otherwise; ctid always walks heap blocks, in physical order.",
							 &safe_backfill_iteration,
							 ITERATE_AUTO, iteration_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("safe_backfill.reuse_space",
							 "Prune the pages each batch rewrote and record their free space, so later batches reuse it.",
							 "Without it every backfill doubles the table; the pruning is what any page access does.",
							 &safe_backfill_reuse_space,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("safe_backfill.synchronous_commit",
							 "Whether each batch's commit waits for its WAL to reach disk.",
							 "Off (the default): batches commit with synchronous_commit = off, and the call's last commit, which is synchronous, makes everything durable before CALL returns.  A crash can lose only the last batches, and their job-table record with them, so a re-run redoes exactly those.",
							 &safe_backfill_synchronous_commit,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("safe_backfill.hot_rounds",
							"Rounds each batch of the main pass is split into, so that most of its updates are HOT (no new index entries).",
							"Round r rewrites the rows whose line pointer number is r modulo hot_rounds, and commits; the batch's pages are pruned before the next round, so its rows are rewritten in place.  1 writes each batch with one UPDATE.  A column that is part of an index, or a table whose access method is not heap, always gets one round.",
							&safe_backfill_hot_rounds,
							8, 1, 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("safe_backfill.round_horizon_wait",
							 "Whether a serial run waits, after each HOT round, for the statements that started before the round committed.",
							 "Pruning cannot remove the row versions a round left dead while an older snapshot of this database is running, so the next round's rows would move and add index entries.  Such statements are short (concurrent clients', other runs'); the wait is on the table's own horizon, 1 s at most per round.  Parallel workers always wait.  The coordinator of a Citus table turns it off on a node where a long snapshot would make every shard's rounds wait in vain.",
							 &safe_backfill_round_horizon_wait,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("safe_backfill.citus_shards_per_node",
							"Shards of a Citus distributed table filled at the same time on each node, when the call does not ask for workers.",
							"With workers => 1 (the default) a distributed table's shards are filled this many at a time on each node that holds them; workers => n (n > 1) asks for n at a time instead.  0 (the default): as many as the coordinator has CPU cores.  1 fills one shard at a time on each node.",
							&safe_backfill_citus_shards_per_node,
							0, 0, 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	/*
	 * Superusers only: a run started by any role deletes the old records of
	 * every role's runs.
	 */
	DefineCustomIntVariable("safe_backfill.job_retention",
							"How long the records of finished runs are kept in safe_backfill_jobs.",
							"When a run starts, the runs that finished (done or failed) longer ago than this are deleted, with their parallel ranges; unfinished runs are kept.  0 keeps every record.",
							&safe_backfill_job_retention_s,
							30 * SECS_PER_DAY, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	/*
	 * Read by the resumer that the launcher (shared_preload_libraries)
	 * starts in each database after a restart: a reload changes it.
	 */
	DefineCustomIntVariable("safe_backfill.max_detached_runs",
							"Most detached runs the launcher resumes at once in each database after a restart.",
							"Each takes a background worker (max_worker_processes), and workers => n more; the others wait for one to end.",
							&safe_backfill_max_detached_runs,
							4, 1, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	compat_reserve_guc_prefix("safe_backfill");
}

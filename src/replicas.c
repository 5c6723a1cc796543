/*
 * replicas.c
 *		Wait before a batch while a standby is too far behind.
 *
 * pg_stat_replication.replay_lag is only updated while a standby reports
 * progress: it goes stale or NULL when the standby is idle or its replay is
 * paused.  So we also measure the lag ourselves: we remember when each of our
 * batches committed and at which WAL position, and a standby's lag is the
 * age of the oldest of our commits it has not replayed yet.
 */
#include "safe_backfill.h"
#include "src/replicas.h"
#include "src/sqlgen.h"
#include "src/xact.h"

#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#define COMMIT_HISTORY 4096

typedef struct CommitMark
{
	TimestampTz at;
	XLogRecPtr	lsn;
} CommitMark;

static CommitMark history[COMMIT_HISTORY];
static int	history_next = 0;
static int	history_count = 0;

void
replica_lag_reset(void)
{
	history_next = 0;
	history_count = 0;
}

/* After each batch commits: where the WAL is now, and when. */
void
replica_lag_note_commit(void)
{
	history[history_next].at = GetCurrentTimestamp();
	history[history_next].lsn = GetXLogInsertRecPtr();
	history_next = (history_next + 1) % COMMIT_HISTORY;
	history_count = Min(history_count + 1, COMMIT_HISTORY);
}

/* Age in ms of our oldest commit past the standby's replay position. */
static double
own_commit_lag_ms(XLogRecPtr replayed, TimestampTz now)
{
	int			i;

	for (i = history_count; i > 0; i--)
	{
		CommitMark *mark = &history[(history_next - i + COMMIT_HISTORY) % COMMIT_HISTORY];

		if (mark->lsn > replayed)
			return (double) (now - mark->at) / 1000.0;
	}
	return 0;
}

/*
 * The standby furthest behind, as "name (3.2 s behind)", and its lag; NULL
 * when no standby is over the limit.
 */
static char *
lagging_standby(int limit_ms, double *lag_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *worst = NULL;
	uint64		i;
	int			rc;

	*lag_ms = 0;
	rc = SPI_execute(sql_replica_positions(), true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading pg_stat_replication failed: %s",
			 SPI_result_code_string(rc));

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		XLogRecPtr	replayed = DatumGetLSN(SPI_getbinval(tup, desc, 2, &isnull));
		double		reported = DatumGetFloat8(SPI_getbinval(tup, desc, 3, &isnull));
		double		lag = Max(reported, own_commit_lag_ms(replayed, now));

		if (lag > limit_ms && lag > *lag_ms)
		{
			*lag_ms = lag;
			worst = psprintf("%s", SPI_getvalue(tup, desc, 1));
		}
	}
	SPI_freetuptable(SPI_tuptable);
	return worst;
}

/*
 * pg_stat_replication shows the positions only to roles with the privileges
 * of pg_read_all_stats: without them every standby would look up to date and
 * the throttle would silently do nothing.
 */
void
require_replica_visibility(void)
{
	if (has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("max_replica_lag needs the privileges of pg_read_all_stats"),
			 errdetail("Without them pg_stat_replication hides the standbys' positions from role \"%s\", so their lag cannot be seen; nothing was changed.",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("%s or call it without max_replica_lag.",
					 sql_hint_grant_role("pg_read_all_stats",
										 GetUserNameFromId(GetUserId(), false)))));
}

/*
 * Before a batch: while a standby is more than limit_ms behind, wait, saying
 * so about once a second; after max_wait_ms in a row, give up.  A standby that
 * disconnects leaves pg_stat_replication and stops holding us back.
 */
void
wait_for_replicas(BackfillTarget *target, int limit_ms, int max_wait_ms,
				  double *waited_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz last_notice = 0;
	double		lag_ms;
	char	   *standby;

	if (limit_ms <= 0)
		return;
	while ((standby = lagging_standby(limit_ms, &lag_ms)) != NULL)
	{
		TimestampTz now = GetCurrentTimestamp();
		double		so_far = (double) (now - start) / 1000.0;

		if (so_far > max_wait_ms)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("safe_backfill: %s: standby \"%s\" stayed more than %d ms behind for %.0f s",
							target->display, standby, limit_ms, so_far / 1000.0),
					 errdetail("It is %.1f s behind. The batches committed so far are kept.", lag_ms / 1000.0),
					 errhint("Check the standby (is replay paused? SELECT pg_is_wal_replay_paused()), then call safe_backfill again; raise safe_backfill.max_replica_wait to wait longer.")));
		if (TimestampDifferenceExceeds(last_notice, now, 1000))
		{
			ereport(NOTICE,
					(errmsg("safe_backfill: %s: waiting for standby \"%s\" to catch up: %.1f s behind, limit %.1f s",
							target->display, standby, lag_ms / 1000.0, limit_ms / 1000.0)));
			last_notice = now;
		}
		commit_transaction();	/* no snapshot held while we wait */
		sleep_interruptibly(Min(100, limit_ms));
	}
	*waited_ms += (double) (GetCurrentTimestamp() - start) / 1000.0;
}

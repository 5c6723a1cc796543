/*
 * citus.c
 *		Citus tables: find out how a table is distributed, fill a distributed
 *		table shard by shard on the nodes that hold the shards, and make lock
 *		bounds reach the workers.
 *
 * On a Citus coordinator the distributed table is an empty shell: its rows
 * live in shards, plain tables on the worker nodes.  Batches run on the
 * coordinator would pull every shard's key range through the coordinator
 * and commit each one over all shards in two phases; without a primary key
 * the ctid ranges of the empty shell would make the whole table one UPDATE.
 * So a hash-distributed (or single-shard) table is filled by the ordinary
 * single-node backfill of each shard, CALLed on the shard's own node over a
 * libpq connection of ours; the coordinator keeps one job for the table,
 * with one range per shard, so a re-run redoes only the shards not finished,
 * and each shard's own job on its node resumes inside the shard.
 *
 * Reference tables (one shard, a copy on every node) keep the coordinator's
 * batches, which Citus applies to every copy: that needs a primary key.
 */
#include "safe_backfill.h"
#include "src/citus_nodes.h"
#include "src/citus.h"
#include "src/jobs.h"
#include "src/keys.h"
#include "src/settings.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/xact.h"

#include "libpq-fe.h"

#include <unistd.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* Rounds over the shards before the NULLs still found are an error. */
#define CITUS_MAX_ROUNDS	3
/*
 * A shard's batches are capped near this fraction of the shard's rows: a
 * shard is still filled in several batches (progress, short transactions),
 * but each batch's fixed costs (reading its tids, its HOT rounds' commits,
 * pruning and records) are paid fewer times.  A third rather than a tenth:
 * on 1M rows in 32 shards (3 batches of 10000 a shard instead of 10 of
 * 3125), the shards' runs used about 10% less CPU, the table growing x1.25
 * instead of x1.23.
 */
#define CITUS_SHARD_BATCH_FRACTION	3
#define CITUS_MIN_SHARD_BATCH	100
/* safe_backfill.citus_shards_per_node's maximum, and the cores counted */
#define CITUS_MAX_SHARDS_PER_NODE	64

/*
 * A connection of the run to a node: idle, or filling task's shard.  The
 * extension's check, the shards' statistics and every shard's CALL on that
 * node use the run's connections there: a connection costs a backend's
 * start on the node (40-60 ms on a loaded host, one after the other).
 */
typedef struct RunningShard
{
	ShardTask  *task;			/* the shard it fills, or the last one (its node) */
	PGconn	   *conn;
	char	   *nspname;		/* safe_backfill's schema on that node */
	bool		settings_sent;	/* the call's settings are set in its session */
	bool		waits_off;		/* round waits turned off on this connection */
} RunningShard;

/* A node the run has connected to (and checked the extension on). */
typedef struct KnownNode
{
	char	   *host;
	int			port;
} KnownNode;

/* What every shard's CALL gets. */
typedef struct ShardCallArgs
{
	const char *sql;			/* the CALL, with the remote schema */
	const char *value;			/* the value's text under the canonical settings */
	int			batch_size;
	int			pause_ms;
	int			target_batch_ms;
	bool		round_waits;	/* the shards wait after HOT rounds (safe_backfill.round_horizon_wait) */
	List	   *told_nodes;		/* "host:port" of nodes whose waits were turned off */
	int			nsettings;
	const char **setting_names;
	const char **setting_values;
} ShardCallArgs;

/* What a run over the shards keeps between its main pass and sweeps. */
typedef struct CitusRun
{
	char	   *version;		/* safe_backfill's version, on every node too */
	Oid			nsp;			/* safe_backfill's schema here: the jobs tables */
	List	   *shards;			/* every shard, as the run recorded them */
	ShardCallArgs call;
	char	   *typname;		/* the column's type, qualified */
	int			per_node;		/* shards filled at the same time on a node */
	List	   *nodes;			/* KnownNode of every node met */
	List	   *idle;			/* RunningShard: the run's connections not filling a shard */
	MemoryContext cxt;			/* where the run's lists live: across its commits */
	MemoryContextCallback close_idle_cb;	/* they are closed when the run's memory goes */
	int64		shards_done;
	TimestampTz started;
} CitusRun;

/* safe_backfill's version and schema here (SPI). */
static void
local_extension_version(char **version, char **nspname)
{
	if (SPI_execute(sql_citus_extension_version(), true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "safe_backfill: reading the extension's version failed");
	*version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*nspname = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * The node must have safe_backfill, in the coordinator's version: the
 * shard's run is the extension's own code there.  Its schema, for the CALL.
 */
static char *
judge_remote_extension(PGresult *res, ShardTask *task, const char *version)
{
	char	   *remote_version = PQntuples(res) == 1 ? pstrdup(PQgetvalue(res, 0, 0)) : NULL;
	char	   *nspname = PQntuples(res) == 1 ? pstrdup(PQgetvalue(res, 0, 1)) : NULL;
	char	   *foreign = PQntuples(res) == 1 ? pstrdup(PQgetvalue(res, 0, 2)) : NULL;

	PQclear(res);
	if (remote_version == NULL || strcmp(remote_version, version) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill: node %s:%d has %s, the coordinator version %s",
						task->host, task->port,
						remote_version ? psprintf("safe_backfill version %s", remote_version) :
						"no safe_backfill extension",
						version),
				 errdetail("A distributed table is filled shard by shard on the nodes that hold the shards, by the extension installed there. Nothing was changed."),
				 errhint("Install safe_backfill %s on every node and run CREATE EXTENSION safe_backfill (or ALTER EXTENSION safe_backfill UPDATE) in this database on each.",
						 version)));
	if (strcmp(foreign, "0") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("safe_backfill: node %s:%d has %s routines called safe_backfill in schema %s that are not the extension's",
						task->host, task->port, foreign, quote_identifier(nspname)),
				 errdetail("The shard's CALL on that node could run one of them, as you, instead of the extension's procedure. Nothing was changed on that node."),
				 errhint("Drop them, or revoke CREATE on schema %s from the roles that may not create routines there.",
						 quote_identifier(nspname))));
	return nspname;
}

static char *
require_remote_extension(PGconn *conn, ShardTask *task, const char *version)
{
	return judge_remote_extension(citus_node_query(conn, task, sql_citus_extension_version(), 0, NULL),
								  task, version);
}

/* ---------------------------------------------------------------------
 * Per-shard mode
 * --------------------------------------------------------------------- */

static void
refuse_during_rebalance(BackfillTarget *target)
{
	int64		jobs = run_count_query(sql_citus_background_jobs(), true,
									   "Citus background jobs");

	if (jobs > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill: %s: a Citus rebalance or shard move is in progress",
						target->display),
				 errdetail(INT64_FORMAT " background jobs in pg_dist_background_job are scheduled or running; shards may move while they are filled. Nothing was changed.",
						   jobs),
				 errhint("Wait for citus_rebalance_wait() to return, then call safe_backfill again.")));
}

/* The shards with their placements, or only shardid's (if > 0). */
static List *
load_placements(BackfillTarget *target, int64 shardid)
{
	Oid			types[2] = {OIDOID, INT8OID};
	Datum		args[2] = {ObjectIdGetDatum(target->relid), Int64GetDatum(shardid)};
	char		nulls[2] = {' ', shardid > 0 ? ' ' : 'n'};
	List	   *tasks = NIL;
	int64		last = -1;
	uint64		i;

	if (SPI_execute_with_args(sql_citus_placements(), 2, types, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading the shard placements failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ShardTask  *task;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));

		/* one placement a shard: a replicated shard is written once */
		if (id == last)
			continue;
		last = id;
		task = palloc0(sizeof(ShardTask));
		task->shardid = id;
		task->shard_name = SPI_getvalue(tup, desc, 2);
		task->host = SPI_getvalue(tup, desc, 3);
		task->port = pg_strtoint32(SPI_getvalue(tup, desc, 4));
		tasks = lappend(tasks, task);
	}
	SPI_freetuptable(SPI_tuptable);
	return tasks;
}

/* Settings that shape a shard's run, sent ahead of its CALL. */
static const char *const forwarded_settings[] = {
	"lock_timeout",
	"safe_backfill.batch_lock_timeout",
	"safe_backfill.max_batch_retries",
	"safe_backfill.progress_interval",
	"safe_backfill.iteration",
	"safe_backfill.reuse_space",
	"safe_backfill.synchronous_commit",
	"safe_backfill.hot_rounds",
};

/*
 * The settings sent ahead of every shard's CALL.  Shards filled together on
 * a node keep each other's latest dead rows visible while their batches run:
 * each then waits after a HOT round, as parallel workers do, before pruning.
 */
static void
collect_settings(ShardCallArgs *call)
{
	int			ncanon = canonical_setting_count();
	int			max = ncanon + lengthof(forwarded_settings) + 1;
	int			i;

	call->setting_names = palloc(sizeof(char *) * max);
	call->setting_values = palloc(sizeof(char *) * max);
	call->nsettings = 0;
	/* the value's text is read back in these, as canonical_text wrote it */
	for (i = 0; i < ncanon; i++)
	{
		canonical_setting(i, &call->setting_names[call->nsettings],
						  &call->setting_values[call->nsettings]);
		call->nsettings++;
	}
	for (i = 0; i < lengthof(forwarded_settings); i++)
	{
		call->setting_names[call->nsettings] = forwarded_settings[i];
		call->setting_values[call->nsettings] =
			pstrdup(GetConfigOption(forwarded_settings[i], false, false));
		call->nsettings++;
	}
	/* the caller's setting; set_round_waits turns it off on a node where it would wait in vain */
	call->round_waits = safe_backfill_round_horizon_wait;
	call->setting_names[call->nsettings] = "safe_backfill.round_horizon_wait";
	call->setting_values[call->nsettings] = call->round_waits ? "on" : "off";
	call->nsettings++;
}

/*
 * Right before a shard's CALL on a node where shards run together: a round
 * waits for every snapshot older than itself on the node, in any database,
 * for 1 s at most.  One held there for longer would make the rounds of
 * every shard wait in vain (a run measured 28 s instead of 6 s with a
 * snapshot held in another database of a worker).  The shard then runs without round
 * waits; a later shard on the same connection gets them back once that
 * snapshot is gone.  holders: "pid n, ..." of the sessions (only those the
 * caller may see in pg_stat_activity count) read with the extension's
 * check (sql_citus_before_shard_call), or NULL.
 */
static void
set_round_waits(RunningShard *run, ShardCallArgs *call, const char *holders)
{
	PGresult   *res;
	char	   *node;
	bool		off;
	const char *params[2] = {"safe_backfill.round_horizon_wait", NULL};

	if (!call->round_waits)
		return;
	off = holders != NULL;
	if (off == run->waits_off)
		return;
	node = psprintf("%s:%d", run->task->host, run->task->port);
	if (off && !list_member(call->told_nodes, makeString(node)))
	{
		/* in the run's context, like the lists of run_shards */
		call->told_nodes = lappend(call->told_nodes, makeString(node));
		ereport(NOTICE,
				(errmsg("safe_backfill: shards on node %s:%d are filled without waiting after each HOT round: %s %s held a snapshot for more than 1 s",
						run->task->host, run->task->port, holders,
						strchr(holders, ',') ? "have" : "has"),
				 errdetail("A round waits for the snapshots older than itself on its node, in every database; waiting for that one would only slow every round down. The shards running together may leave more dead rows behind.")));
	}
	params[1] = off ? "off" : "on";
	res = citus_node_query(run->conn, run->task, sql_citus_remote_settings(1), 2, params);
	PQclear(res);
	run->waits_off = off;
}

static bool
same_node(const ShardTask *a, const ShardTask *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

static KnownNode *
find_node(CitusRun *cr, const ShardTask *task)
{
	ListCell   *lc;

	foreach(lc, cr->nodes)
	{
		KnownNode  *node = (KnownNode *) lfirst(lc);

		if (strcmp(node->host, task->host) == 0 && node->port == task->port)
			return node;
	}
	return NULL;
}

/* The run's connections outlive its transactions: their lists are in its memory. */
static void
add_idle(CitusRun *cr, RunningShard *run)
{
	MemoryContext old = MemoryContextSwitchTo(cr->cxt);

	cr->idle = lappend(cr->idle, run);
	MemoryContextSwitchTo(old);
}

/* Close the run's idle connections: at its end, or when its memory goes after an error. */
static void
close_idle(CitusRun *cr)
{
	List	   *idle = cr->idle;
	ListCell   *lc;

	cr->idle = NIL;
	foreach(lc, idle)
		PQfinish(((RunningShard *) lfirst(lc))->conn);
}

static void
close_idle_callback(void *arg)
{
	close_idle((CitusRun *) arg);
}

/*
 * The first connection to a node: the extension there must be the
 * coordinator's version (checked again before each CALL).
 */
static void
learn_node(CitusRun *cr, RunningShard *run)
{
	MemoryContext old;
	KnownNode  *node;

	(void) require_remote_extension(run->conn, run->task, cr->version);
	old = MemoryContextSwitchTo(cr->cxt);
	node = palloc0(sizeof(KnownNode));
	node->host = pstrdup(run->task->host);
	node->port = run->task->port;
	cr->nodes = lappend(cr->nodes, node);
	MemoryContextSwitchTo(old);
}

/* A new connection of the run to task's node (the first one there learns the node). */
static RunningShard *
open_connection(CitusRun *cr, ShardTask *task)
{
	MemoryContext old = MemoryContextSwitchTo(cr->cxt);
	RunningShard *run = palloc0(sizeof(RunningShard));

	run->task = task;
	MemoryContextSwitchTo(old);
	run->conn = citus_node_connect(task);
	PG_TRY();
	{
		if (find_node(cr, task) == NULL)
			learn_node(cr, run);
	}
	PG_CATCH();
	{
		PQfinish(run->conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return run;
}

/*
 * Before any shard is filled: every node holding one of them has
 * safe_backfill in the coordinator's version, and lets us connect.  The
 * connection stays open for the node's shards.
 */
static void
open_node_connections(CitusRun *cr)
{
	ListCell   *lc;

	foreach(lc, cr->shards)
	{
		ShardTask  *task = (ShardTask *) lfirst(lc);

		if (find_node(cr, task) == NULL)
			add_idle(cr, open_connection(cr, task));
	}
}

/* An idle connection of the run to the task's node, or NULL. */
static RunningShard *
take_idle_connection(CitusRun *cr, ShardTask *task)
{
	ListCell   *lc;

	foreach(lc, cr->idle)
	{
		RunningShard *run = (RunningShard *) lfirst(lc);

		if (same_node(run->task, task))
		{
			cr->idle = foreach_delete_current(cr->idle, lc);
			return run;
		}
	}
	return NULL;
}

/* The run's connection to a node for the shards' statistics (citus_estimate_rows). */
static PGconn *
connection_for_estimate(ShardTask *node, void *arg)
{
	CitusRun   *cr = (CitusRun *) arg;
	RunningShard *run = take_idle_connection(cr, node);

	if (run == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(cr->cxt);
		ShardTask  *copy = palloc0(sizeof(ShardTask));

		copy->host = pstrdup(node->host);
		copy->port = node->port;
		MemoryContextSwitchTo(old);
		run = open_connection(cr, copy);
	}
	add_idle(cr, run);
	return run->conn;
}

/* The call's settings, once in each session: they stay set for its later shards. */
static void
send_settings(RunningShard *run, ShardCallArgs *call)
{
	const char **params = palloc(sizeof(char *) * 2 * call->nsettings);
	PGresult   *res;
	int			i;

	for (i = 0; i < call->nsettings; i++)
	{
		params[2 * i] = call->setting_names[i];
		params[2 * i + 1] = call->setting_values[i];
	}
	res = citus_node_query(run->conn, run->task, sql_citus_remote_settings(call->nsettings),
						   2 * call->nsettings, params);
	PQclear(res);
	run->settings_sent = true;
}

/*
 * Send the shard's CALL, on an idle connection of the run to its node, or
 * on a new one.  Right before it, the extension is checked again (what the
 * CALL resolves to may have changed) and the round waits set.
 */
static RunningShard *
start_shard(CitusRun *cr, ShardTask *task, BackfillTarget *target)
{
	ShardCallArgs *call = &cr->call;
	RunningShard *run = take_idle_connection(cr, task);
	const char *callparams[6];

	if (run == NULL)
		run = open_connection(cr, task);
	run->task = task;
	citus_node_relay_notices(run->conn, task);
	PG_TRY();
	{
		PGresult   *before[2];
		char	   *holders;

		if (!run->settings_sent)
			send_settings(run, call);
		/* one round trip: what the CALL resolves to, and the long snapshots */
		citus_node_query_each(run->conn, task, sql_citus_before_shard_call(), before, 2);
		holders = PQntuples(before[1]) == 1 && !PQgetisnull(before[1], 0, 0) ?
			pstrdup(PQgetvalue(before[1], 0, 0)) : NULL;
		PQclear(before[1]);
		run->nspname = judge_remote_extension(before[0], task, cr->version);
		set_round_waits(run, call, holders);
	}
	PG_CATCH();
	{
		PQfinish(run->conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	callparams[0] = task->shard_name;
	callparams[1] = target->colname;
	callparams[2] = call->value;
	callparams[3] = psprintf("%d", call->batch_size);
	callparams[4] = psprintf("%d", call->pause_ms);
	callparams[5] = psprintf("%d", call->target_batch_ms);
	if (!PQsendQueryParams(run->conn, sql_citus_shard_call(run->nspname, cr->typname), 6,
						   NULL, callparams, NULL, NULL, 0))
	{
		char	   *msg = pstrdup(PQerrorMessage(run->conn));

		PQfinish(run->conn);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("safe_backfill: could not send the call for shard " INT64_FORMAT " to node %s:%d",
						task->shardid, task->host, task->port),
				 errdetail_internal("%s", msg)));
	}
	return run;
}

/* Stop every shard still running: cancel its CALL, close its connection. */
static void
cancel_running(RunningShard **running, int nrunning)
{
	int			i;

	for (i = 0; i < nrunning; i++)
	{
		PGcancel   *cancel;
		char		errbuf[256];

		if (running[i] == NULL || running[i]->conn == NULL)
			continue;
		cancel = PQgetCancel(running[i]->conn);
		if (cancel)
		{
			(void) PQcancel(cancel, errbuf, sizeof(errbuf));
			PQfreeCancel(cancel);
		}
		PQfinish(running[i]->conn);
		running[i]->conn = NULL;
	}
}

static int
running_on_node(RunningShard **running, int nrunning, ShardTask *task)
{
	int			i;
	int			n = 0;

	for (i = 0; i < nrunning; i++)
		if (running[i] && same_node(running[i]->task, task))
			n++;
	return n;
}

/*
 * Commit a shard's done record without waiting for its WAL flush (a flush
 * per shard, about 5 ms each on a loaded disk, adds up over many small
 * shards), unless safe_backfill.synchronous_commit says so.  A crash that loses it only
 * makes a re-run call that shard again, whose own job on its node then finds
 * nothing left to fill; the run's last commit (the job's end) is an ordinary
 * one, and its flush covers these.
 */
static void
commit_without_flush(void)
{
	if (!safe_backfill_synchronous_commit)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	commit_transaction();
}

/*
 * A shard's CALL returned without error.  Record the shard as done in the
 * job's ranges and commit.  If its placement moved meanwhile (a shard move
 * that started after our check), the shard is queued again for its new node.
 */
static bool
finish_shard(BackfillTarget *target, BackfillJob *job, Oid nsp, ShardTask *task,
			 List **pending)
{
	List	   *now = load_placements(target, task->shardid);
	ShardTask  *moved;

	if (now != NIL)
	{
		moved = (ShardTask *) linitial(now);
		if (strcmp(moved->host, task->host) != 0 || moved->port != task->port)
		{
			ereport(NOTICE,
					(errmsg("safe_backfill: %s: shard " INT64_FORMAT " moved from %s:%d to %s:%d while it was filled; filling it again there",
							target->display, task->shardid, task->host, task->port,
							moved->host, moved->port)));
			moved->range_no = task->range_no;
			*pending = lappend(*pending, moved);
			return false;
		}
	}
	/* a shard that appeared after the run recorded its shards has no range */
	if (task->range_no > 0)
		range_record_done(range_recorder(target, nsp, job_id(job), task->range_no));
	commit_without_flush();
	task->done = true;
	return true;
}

/*
 * Run tasks, at most per_node at a time on each node, until all are done.
 * A shard's error stops them all (each shard's own job on its node records
 * where it stopped) and is raised here.  The connections a finished shard
 * leaves stay the run's, for its next shards.
 */
static void
run_shards(CitusRun *cr, BackfillTarget *target, BackfillJob *job, List *tasks)
{
	int			max_running = list_length(tasks) + 1;
	RunningShard **running = palloc0(sizeof(RunningShard *) * max_running);
	List	   *pending = list_copy(tasks);

	PG_TRY();
	{
		for (;;)
		{
			WaitEventSet *set;
			WaitEvent	event;
			ListCell   *lc;
			int			nrunning = 0;
			int			i;

			/* start what the nodes have room for */
			foreach(lc, pending)
			{
				ShardTask  *task = (ShardTask *) lfirst(lc);

				if (running_on_node(running, max_running, task) >= cr->per_node)
					continue;
				for (i = 0; i < max_running && running[i]; i++)
					;
				if (i == max_running)
					break;
				running[i] = start_shard(cr, task, target);
				pending = foreach_delete_current(pending, lc);
			}
			for (i = 0; i < max_running; i++)
				if (running[i])
					nrunning++;
			if (nrunning == 0 && pending == NIL)
				break;

			set = COMPAT_CREATE_WAIT_EVENT_SET(nrunning + 2);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			for (i = 0; i < max_running; i++)
				if (running[i])
					AddWaitEventToSet(set, WL_SOCKET_READABLE, PQsocket(running[i]->conn),
									  NULL, running[i]);
			(void) WaitEventSetWait(set, -1L, &event, 1, PG_WAIT_EXTENSION);
			FreeWaitEventSet(set);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();

			for (i = 0; i < max_running; i++)
			{
				RunningShard *run = running[i];
				PGresult   *res;
				PGresult   *last = NULL;

				if (run == NULL)
					continue;
				if (!PQconsumeInput(run->conn))
					citus_node_raise_error(run->task, NULL, run->conn);
				if (PQisBusy(run->conn))
					continue;
				while ((res = PQgetResult(run->conn)) != NULL)
				{
					if (last)
						PQclear(last);
					last = res;
				}
				if (last == NULL || PQresultStatus(last) != PGRES_COMMAND_OK)
					citus_node_raise_error(run->task, last, run->conn);
				PQclear(last);
				add_idle(cr, run);
				running[i] = NULL;
				if (finish_shard(target, job, cr->nsp, run->task, &pending))
					cr->shards_done++;
			}
		}
	}
	PG_CATCH();
	{
		cancel_running(running, max_running);
		close_idle(cr);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Which shards this run fills: those an interrupted run left unfinished, or
 * all of them, each recorded as a range of the job.
 */
static List *
shards_to_fill(CitusRun *cr, BackfillJob *job, ResumeKind resume)
{
	ListCell   *lc;
	List	   *todo = NIL;

	if (resume == RESUME_RANGES)
	{
		JobRange   *ranges;
		int			n = job_load_ranges(job, &ranges);

		foreach(lc, cr->shards)
		{
			ShardTask  *task = (ShardTask *) lfirst(lc);

			for (int i = 0; i < n; i++)
				if (ranges[i].shard_id == task->shardid)
				{
					task->range_no = ranges[i].range_no;
					todo = lappend(todo, task);
				}
		}
		return todo;
	}
	foreach(lc, cr->shards)
	{
		ShardTask  *task = (ShardTask *) lfirst(lc);

		task->range_no = foreach_current_index(lc) + 1;
		job_insert_shard_range(job, task->range_no, task->shardid);
	}
	commit_transaction();
	return list_copy(cr->shards);
}

/* Shards read again from the catalog keep the ranges the run gave them. */
static void
carry_range_numbers(List *tasks, List *all)
{
	ListCell   *lc;
	ListCell   *la;

	foreach(lc, tasks)
	{
		ShardTask  *task = (ShardTask *) lfirst(lc);

		foreach(la, all)
			if (((ShardTask *) lfirst(la))->shardid == task->shardid)
				task->range_no = ((ShardTask *) lfirst(la))->range_no;
	}
}

/* What every shard's CALL gets: the value, batch sizes and settings. */
static void
prepare_shard_call(CitusRun *cr, BackfillTarget *target, const BackfillOptions *opts,
				   double rows)
{
	int			shard_rows = (int) Min((double) INT_MAX, rows / list_length(cr->shards));

	cr->typname = format_type_extended(target->atttypid, -1, FORMAT_TYPE_FORCE_QUALIFY);
	cr->call.value = canonical_text(target->atttypid, target->written.value);
	cr->call.sql = NULL;
	cr->call.batch_size = Min(opts->batch_size,
							  Max(CITUS_MIN_SHARD_BATCH, shard_rows / CITUS_SHARD_BATCH_FRACTION));
	cr->call.pause_ms = opts->pause_ms;
	cr->call.target_batch_ms = opts->target_batch_ms;
	collect_settings(&cr->call);
}

/*
 * Shards filled at the same time on each node: workers => n (n > 1) asks for
 * n, as it asks for n processes on one node; the default workers => 1 leaves
 * it to safe_backfill.citus_shards_per_node, whose default 0 is as many as
 * this server has cores: one shard's run is a single session, and fewer
 * would leave a node's cores idle while Citus's own UPDATE uses them all,
 * while more take turns on the cores and wait for each other after each HOT
 * round (on 2 cores, 4 at a time on each node used about 25% more CPU than
 * 2).  The nodes' own cores are not asked: no query of PostgreSQL's tells
 * them, and a function of the extension that did would change its SQL; the
 * nodes of a Citus cluster are usually alike.
 */
static int
shards_per_node(const BackfillOptions *opts)
{
	long		cores;

	if (opts->workers > 1)
		return opts->workers;
	if (safe_backfill_citus_shards_per_node > 0)
		return safe_backfill_citus_shards_per_node;
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	return (int) Max(1, Min(cores, CITUS_MAX_SHARDS_PER_NODE));
}

/* The main pass: each shard's own run on its node, a few at a time per node. */
static bool
citus_main_pass(RunContext *run, BackfillJob *job, ResumeKind resume)
{
	CitusRun   *cr = (CitusRun *) run->strategy_state;
	List	   *todo = shards_to_fill(cr, job, resume);

	prepare_shard_call(cr, run->target, run->opts, run->stats.estimated_rows);
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: distributed table, filling %d of its %d shards on their nodes, %d at a time on each node, batches of at most %d rows",
					run->target->display, list_length(todo), list_length(cr->shards),
					cr->per_node, cr->call.batch_size)));
	run_shards(cr, run->target, job, todo);
	return true;
}

/*
 * A sweep over the shards.  The first is the one each shard's run ended
 * with on its node; sweep_until_clean then counts over the distributed
 * table, and each later sweep fills every shard again (rows written with
 * NULL meanwhile, or shards split or moved).
 */
static int64
citus_sweep(RunContext *run, BackfillJob *job, int sweep)
{
	CitusRun   *cr = (CitusRun *) run->strategy_state;
	List	   *todo;

	if (sweep == 1)
		return 0;
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: a count over the distributed table still found NULLs; filling every shard again",
					run->target->display)));
	todo = load_placements(run->target, 0);
	carry_range_numbers(todo, cr->shards);
	run_shards(cr, run->target, job, todo);
	return SWEEP_FILLED_UNKNOWN;
}

static void
citus_summary(RunContext *run)
{
	CitusRun   *cr = (CitusRun *) run->strategy_state;
	int			rounds = run->stats.sweeps;

	close_idle(cr);
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: filled the distributed table shard by shard",
					run->target->display),
			 errdetail_internal(INT64_FORMAT " shard runs on their nodes in %d %s, %.2f s. After the last shard, a count over the distributed table found no NULL in column \"%s\"; rows written later with NULL are not covered: a default or NOT NULL keeps them out.",
								cr->shards_done, rounds, rounds == 1 ? "round" : "rounds",
								(double) (GetCurrentTimestamp() - cr->started) / USECS_PER_SEC,
								run->target->colname)));
}

static const RunStrategy citus_strategy = {
	.ranges_noun = "shards",
	.ranges_count_rows = false,
	.sweeps_noun = "rounds over the shards",
	.max_sweeps = CITUS_MAX_ROUNDS,
	.main_pass = citus_main_pass,
	.sweep = citus_sweep,
	.summary = citus_summary,
};

/*
 * Before the job: refuse while shards may move, find every shard's
 * placement, connect to every node and check the extension there, and
 * estimate the rows that size the batches, over those connections.
 */
static const RunStrategy *
prepare_per_shard(RunContext *run)
{
	BackfillTarget *target = run->target;
	CitusRun   *cr = palloc0(sizeof(CitusRun));
	char	   *nspname;

	/* the run's connections are closed whichever way it ends */
	cr->cxt = CurrentMemoryContext;
	cr->close_idle_cb.func = close_idle_callback;
	cr->close_idle_cb.arg = cr;
	MemoryContextRegisterResetCallback(cr->cxt, &cr->close_idle_cb);
	cr->per_node = shards_per_node(run->opts);

	refuse_during_rebalance(target);
	local_extension_version(&cr->version, &nspname);
	cr->nsp = get_namespace_oid(nspname, false);
	cr->shards = load_placements(target, 0);
	if (cr->shards == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill: %s: no active placement of its shards on a primary node",
						target->display)));
	open_node_connections(cr);
	/* only to size batches and show progress: an estimate, never a count */
	run->stats.estimated_rows = citus_estimate_rows(target->relid, connection_for_estimate, cr);
	commit_transaction();
	cr->started = GetCurrentTimestamp();
	run->strategy_state = cr;
	return &citus_strategy;
}

/*
 * expression => on a distributed or reference table: each shard would have
 * to compute it on its own node, where the table has the shard's name (a
 * column qualified with the table's name no longer resolves) and other
 * tables are other shards; not supported yet.
 */

/*
 * A reference table is filled by the coordinator's batches, which Citus
 * writes to every copy: by primary key only, since block ranges of the
 * coordinator's empty shell would be the whole table in one transaction.
 */
static void
check_coordinator_mode(BackfillTarget *target, const BackfillOptions *opts)
{
	if (target->nkeys == 0 || safe_backfill_iteration == ITERATE_CTID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("safe_backfill: %s: a Citus reference table is filled in batches by its primary key, and it has none",
						target->display),
				 errdetail("Its rows are on the worker nodes; batches by ranges of blocks of the coordinator's empty copy would fill the whole table in one transaction. Nothing was changed."),
				 errhint("Add a primary key to the table (or, with safe_backfill.iteration = ctid, set it back to auto).")));
	if (opts->workers > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("safe_backfill: %s: workers => %d is not supported for a Citus reference table",
						target->display, opts->workers),
				 errdetail("Every batch of a reference table writes every copy of it in one distributed transaction; parallel workers would only take turns. Nothing was changed."),
				 errhint("Call it with workers => 1.")));
	if (safe_backfill_reuse_space)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: no space reuse for a Citus reference table",
						target->display),
				 errdetail("Its rows are in copies on the nodes, not in the coordinator's table that safe_backfill prunes; the copies may grow by the rows rewritten until they are vacuumed.")));
}

/*
 * The strategy for a Citus table, asked first by run_backfill: a
 * distributed table is always filled shard by shard (never by coordinator
 * batches); a reference table is checked, then filled as any table (NULL).
 */
const RunStrategy *
citus_strategy_for(RunContext *run)
{
	switch (citus_table_kind(run->target->relid))
	{
		case CITUS_TABLE_DISTRIBUTED:
			return prepare_per_shard(run);
		case CITUS_TABLE_REFERENCE:
			check_coordinator_mode(run->target, run->opts);
			return NULL;
		default:
			return NULL;
	}
}

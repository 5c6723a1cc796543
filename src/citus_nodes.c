/*
 * citus_nodes.c
 *		What Citus says about a table, and the nodes that hold its shards:
 *		how the table is distributed, lock bounds that reach the workers,
 *		connections to the nodes (as the current user, with values always
 *		sent as parameters), and the sessions holding locks on the shards.
 *		Used by the mechanisms (locking, space) and by the per-shard
 *		strategy in citus.c.
 */
#include "safe_backfill.h"
#include "src/citus_nodes.h"
#include "src/sqlgen.h"
#include "src/xact.h"

#include "libpq-fe.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "pgstat.h"
#include "storage/bufpage.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* ---------------------------------------------------------------------
 * Detection
 * --------------------------------------------------------------------- */

/* citus.so is loaded in this backend (its settings exist). */
bool
citus_is_loaded(void)
{
	return GetConfigOption("citus.propagate_set_commands", true, false) != NULL;
}

/*
 * How Citus distributes the table, read from pg_dist_partition by OID.
 * partmethod 'h': hash-distributed; 'n' with repmodel 't': a reference
 * table; 'n' with repmodel 's' and a colocation group: a distributed table
 * with a single shard (a Citus local table has colocation id 0).
 */
CitusTableKind
citus_table_kind(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	CitusTableKind kind = CITUS_TABLE_NONE;
	int			rc;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return CITUS_TABLE_NONE;
	rc = SPI_execute_with_args(sql_citus_table_kind(), 1, types, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading pg_dist_partition failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		char	   *method = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *repmodel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		char	   *colocation = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

		if (strcmp(method, "h") == 0)
			kind = CITUS_TABLE_DISTRIBUTED;
		else if (strcmp(method, "n") == 0 && strcmp(repmodel, "t") == 0)
			kind = CITUS_TABLE_REFERENCE;
		else if (strcmp(method, "n") == 0 && strcmp(repmodel, "s") == 0 &&
				 strcmp(colocation, "0") != 0)
			kind = CITUS_TABLE_DISTRIBUTED;
		else
			kind = CITUS_TABLE_OTHER;
	}
	SPI_freetuptable(SPI_tuptable);
	return kind;
}

/* ---------------------------------------------------------------------
 * Lock bounds that reach the workers
 * --------------------------------------------------------------------- */

/*
 * Set lock_timeout for the rest of the current (sub)transaction by a SET
 * statement that Citus also sends to every worker connection the
 * transaction uses (citus.propagate_set_commands = 'local'): a batch or a
 * DDL step that waits for a lock on a shard then fails after timeout_ms
 * with 55P03 there too, instead of waiting for as long as the worker's
 * session holds its lock.
 */
void
citus_set_local_lock_timeout(int ms)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill: SPI_connect failed");
	if (SPI_execute(sql_citus_propagate_set_local(), false, 0) != SPI_OK_UTILITY ||
		SPI_execute(sql_set_local_lock_timeout(ms), false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "safe_backfill: setting lock_timeout failed");
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * Connections to the nodes
 * --------------------------------------------------------------------- */

static void
relay_notice(void *arg, const PGresult *res)
{
	ShardTask  *task = (ShardTask *) arg;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	int			elevel = severity && strcmp(severity, "WARNING") == 0 ? WARNING : NOTICE;

	if (msg == NULL)
		return;
	if (task->shardid == 0)
		ereport(elevel,
				(errmsg_internal("%s (node %s:%d)", msg, task->host, task->port),
				 detail ? errdetail_internal("%s", detail) : 0));
	else
		ereport(elevel,
				(errmsg_internal("%s (shard " INT64_FORMAT " on %s:%d)", msg,
								 task->shardid, task->host, task->port),
				 detail ? errdetail_internal("%s", detail) : 0));
}


/* Relay the connection's NOTICEs as task's from now on (a reused connection). */
void
citus_node_relay_notices(PGconn *conn, ShardTask *task)
{
	PQsetNoticeReceiver(conn, relay_notice, task);
}

/*
 * A connection to the node, as the current user, to the current database,
 * with citus.node_conninfo's options: how Citus itself connects.
 */
PGconn *
citus_node_connect(ShardTask *task)
{
	const char *conninfo = GetConfigOption("citus.node_conninfo", true, false);
	PQconninfoOption *extra = NULL;
	PQconninfoOption *o;
	const char *keywords[64];
	const char *values[64];
	int			n = 0;
	char		port[16];
	PGconn	   *conn;

	if (conninfo && conninfo[0] != '\0')
	{
		char	   *err = NULL;

		extra = PQconninfoParse(conninfo, &err);
		if (extra == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("safe_backfill: citus.node_conninfo cannot be parsed: %s",
							err ? err : "out of memory")));
		for (o = extra; o->keyword && n < 50; o++)
		{
			if (o->val == NULL)
				continue;
			keywords[n] = o->keyword;
			values[n++] = o->val;
		}
	}
	snprintf(port, sizeof(port), "%d", task->port);
	keywords[n] = "host";
	values[n++] = task->host;
	keywords[n] = "port";
	values[n++] = port;
	keywords[n] = "dbname";
	values[n++] = get_database_name(MyDatabaseId);
	keywords[n] = "user";
	values[n++] = GetUserNameFromId(GetUserId(), false);
	keywords[n] = "application_name";
	values[n++] = "safe_backfill shard";
	keywords[n] = NULL;
	values[n] = NULL;

	conn = PQconnectdbParams(keywords, values, false);
	if (extra)
		PQconninfoFree(extra);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pstrdup(conn ? PQerrorMessage(conn) : "out of memory");

		if (conn)
			PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 task->shardid == 0 ?
				 errmsg("safe_backfill: could not connect to node %s:%d",
						task->host, task->port) :
				 errmsg("safe_backfill: could not connect to node %s:%d for shard " INT64_FORMAT,
						task->host, task->port, task->shardid),
				 errdetail_internal("%s", msg),
				 errhint("safe_backfill connects to each worker as the current user, like Citus: the workers must accept that connection (citus.node_conninfo, .pgpass, certificates or trust).")));
	}
	PQsetNoticeReceiver(conn, relay_notice, task);
	return conn;
}

/*
 * A failed remote query's SQLSTATE (a lost connection when it has none)
 * and primary message, copied: res is cleared.
 */
static int
remote_error(PGresult *res, PGconn *conn, char **message)
{
	const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int			code = ERRCODE_CONNECTION_FAILURE;

	*message = pstrdup(msg ? msg : PQerrorMessage(conn));
	if (sqlstate && strlen(sqlstate) == 5)
		code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]);
	return code;
}

/* The remote error, raised here with its SQLSTATE. */
void
citus_node_raise_error(ShardTask *task, PGresult *res, PGconn *conn)
{
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	char	   *m;
	int			code = remote_error(res, conn, &m);
	char	   *d = detail ? pstrdup(detail) : NULL;
	char	   *h = hint ? pstrdup(hint) : NULL;

	if (res)
		PQclear(res);
	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", m),
			 d ? errdetail_internal("%s", d) : 0,
			 h ? errhint("%s", h) : 0,
			 task->shardid == 0 ?
			 errcontext("safe_backfill: node %s:%d", task->host, task->port) :
			 errcontext("safe_backfill: shard " INT64_FORMAT " on node %s:%d",
						task->shardid, task->host, task->port)));
}

/* The next result of a query sent on conn (NULL: no more), forwarding a cancel. */
static PGresult *
next_result(PGconn *conn, ShardTask *task)
{
	while (PQisBusy(conn))
	{
		(void) WaitLatchOrSocket(MyLatch,
								 WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
								 PQsocket(conn), -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (!PQconsumeInput(conn))
			citus_node_raise_error(task, NULL, conn);
	}
	return PQgetResult(conn);
}

/* Wait for the one result of a query sent on conn, forwarding a cancel. */
PGresult *
citus_node_wait_for_result(PGconn *conn, ShardTask *task)
{
	PGresult   *result = NULL;
	PGresult   *res;

	while ((res = next_result(conn, task)) != NULL)
	{
		if (result)
			PQclear(result);
		result = res;
	}
	return result;
}

/* A short query, run to the end; its result (the caller clears it). */
PGresult *
citus_node_query(PGconn *conn, ShardTask *task, const char *sql, int nparams,
			 const char *const *params)
{
	PGresult   *res;

	if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0))
		citus_node_raise_error(task, NULL, conn);
	res = citus_node_wait_for_result(conn, task);
	if (res == NULL || (PQresultStatus(res) != PGRES_TUPLES_OK &&
						PQresultStatus(res) != PGRES_COMMAND_OK))
		citus_node_raise_error(task, res, conn);
	return res;
}

/*
 * Statements without parameters sent as one query string (one round trip),
 * each run to the end: their nresults results, in order (the caller clears
 * them).  A failed one is raised here.
 */
void
citus_node_query_each(PGconn *conn, ShardTask *task, const char *sql,
					  PGresult **results, int nresults)
{
	int			n = 0;
	PGresult   *res;

	if (!PQsendQuery(conn, sql))
		citus_node_raise_error(task, NULL, conn);
	while ((res = next_result(conn, task)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_TUPLES_OK || n >= nresults)
		{
			/* the connection is closed by the caller: no need to drain it */
			while (n > 0)
				PQclear(results[--n]);
			citus_node_raise_error(task, res, conn);
		}
		results[n++] = res;
	}
	if (n != nresults)
	{
		while (n > 0)
			PQclear(results[--n]);
		citus_node_raise_error(task, NULL, conn);
	}
}

/* ---------------------------------------------------------------------
 * Lock holders on the nodes
 * --------------------------------------------------------------------- */

/* One node holding shards of the table, and who holds locks on them there. */
typedef struct NodeHolders
{
	ShardTask	node;			/* host and port (shardid 0: no one shard) */
	char	   *shards;			/* the shards' names there, a text[] value */
	PGconn	   *conn;
	char	   *vxids;			/* a text[] value: the holders still there, or NULL */
	char	   *names;			/* "pid n, pid m" */
} NodeHolders;

/* The nodes holding the table's shards, each with its shards' names. */
static List *
load_shard_nodes(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	List	   *nodes = NIL;
	uint64		i;

	if (SPI_execute_with_args(sql_citus_shard_nodes(), 1, types, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading the shard placements failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		NodeHolders *node = palloc0(sizeof(NodeHolders));

		node->node.host = SPI_getvalue(tup, desc, 1);
		node->node.port = pg_strtoint32(SPI_getvalue(tup, desc, 2));
		node->shards = SPI_getvalue(tup, desc, 3);
		nodes = lappend(nodes, node);
	}
	SPI_freetuptable(SPI_tuptable);
	return nodes;
}

/*
 * Run a holders query on the node with the one text[] parameter; keep what
 * it returns.  A node that cannot answer is an error naming it: a node
 * skipped would be a node whose sessions the step does not wait for.
 */
static void
query_node_holders(BackfillTarget *target, NodeHolders *node, const char *sql,
				   const char *param)
{
	const char *params[1] = {param};
	PGresult   *res = NULL;

	if (PQsendQueryParams(node->conn, sql, 1, NULL, params, NULL, NULL, 0))
		res = citus_node_wait_for_result(node->conn, &node->node);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		char	   *m;
		int			code = remote_error(res, node->conn, &m);

		if (res)
			PQclear(res);
		ereport(ERROR,
				(errcode(code),
				 errmsg("safe_backfill: %s: could not read the lock holders of its shards on node %s:%d",
						target->display, node->node.host, node->node.port),
				 errdetail_internal("%s", m),
				 errhint("The step waits for the sessions holding locks on the shards on every node before it takes its lock; it does not go ahead without knowing them. Nothing was changed by this step.")));
	}
	node->vxids = PQgetisnull(res, 0, 0) ? NULL : pstrdup(PQgetvalue(res, 0, 0));
	node->names = PQgetisnull(res, 0, 1) ? NULL : pstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);
}

/* "host:port pid n, pid m; host:port pid k", or NULL if no holder is left. */
static char *
describe_node_holders(List *nodes)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, nodes)
	{
		NodeHolders *node = (NodeHolders *) lfirst(lc);

		if (node->vxids == NULL)
			continue;
		appendStringInfo(&buf, "%s%s:%d %s", buf.len > 0 ? "; " : "",
						 node->node.host, node->node.port, node->names);
	}
	return buf.len > 0 ? buf.data : NULL;
}

/*
 * Before an ACCESS EXCLUSIVE step on a Citus table: wait, for at most
 * timeout_ms, for the sessions that hold a lock on one of its shards on any
 * node now: what WaitForLockers does on this node (it cannot reach the
 * others).  Each node's holders are its virtual transactions at the start,
 * waited for until they end; sessions that come later are not waited for,
 * so a table that is never idle still gets its turn.  The DDL Citus then
 * sends to the shards would otherwise queue behind a worker's session while
 * the coordinator holds ACCESS EXCLUSIVE on the table.  The shard names and
 * transaction ids travel as parameters over connections of ours, as the
 * current user; nothing of them is pasted into a statement.  False (with
 * the holders in *holders) if some are still there.
 */
bool
citus_wait_for_shard_lock_holders(BackfillTarget *target, int timeout_ms, char **holders)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext waitcxt;
	List	   *nodes;
	char	   *volatile left = NULL;
	int			sleep_ms = 10;
	ListCell   *lc;

	*holders = NULL;
	if (!citus_is_loaded() || citus_table_kind(target->relid) == CITUS_TABLE_NONE)
		return true;
	/*
	 * Whatever this transaction touched (a shard placed on this node) is
	 * released first: our own session is never among those waited for.
	 */
	commit_transaction();
	/* survives the commits below; gone, with what the polls allocated, at the end */
	waitcxt = AllocSetContextCreate(cxt, "safe_backfill shard lock holders",
									ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(waitcxt);
	nodes = load_shard_nodes(target->relid);
	PG_TRY();
	{
		foreach(lc, nodes)
		{
			NodeHolders *node = (NodeHolders *) lfirst(lc);

			node->conn = citus_node_connect(&node->node);
			query_node_holders(target, node, sql_citus_lock_holder_snapshot(), node->shards);
		}
		for (;;)
		{
			left = describe_node_holders(nodes);
			if (left == NULL || GetCurrentTimestamp() >= deadline)
				break;
			/* no lock and no snapshot held while we sleep */
			commit_transaction();
			sleep_interruptibly(sleep_ms);
			sleep_ms = Min(sleep_ms * 2, 500);
			foreach(lc, nodes)
			{
				NodeHolders *node = (NodeHolders *) lfirst(lc);

				if (node->vxids)
					query_node_holders(target, node, sql_citus_lock_holders_left(), node->vxids);
			}
		}
	}
	PG_FINALLY();
	{
		foreach(lc, nodes)
		{
			NodeHolders *node = (NodeHolders *) lfirst(lc);

			if (node->conn)
				PQfinish(node->conn);
			node->conn = NULL;
		}
		MemoryContextSwitchTo(cxt);
	}
	PG_END_TRY();
	if (left)
		*holders = pstrdup(left);
	MemoryContextDelete(waitcxt);
	return *holders == NULL;
}

/* ---------------------------------------------------------------------
 * Row estimates
 * --------------------------------------------------------------------- */

/*
 * Rows per block for the table's row width, as the planner guesses them for
 * a table never vacuumed nor analyzed (table_block_relation_estimate_size):
 * the coordinator's table has the shards' columns.
 */
static double
rows_per_block_for_width(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	int32		width = get_rel_data_width(rel, NULL);

	table_close(rel, AccessShareLock);
	return (double) (BLCKSZ - SizeOfPageHeaderData) /
		(width + MAXALIGN(SizeofHeapTupleHeader) + sizeof(ItemIdData));
}

/*
 * The rows of a distributed table, estimated from its shards' sizes and
 * their statistics on the nodes that hold them: one catalog query a node
 * over the caller's connection there (connection_to), never a scan (a count
 * through Citus reads every row of every shard only to size batches).  The
 * shard names and the density travel as parameters.
 */
double
citus_estimate_rows(Oid relid, CitusNodeConnection connection_to, void *arg)
{
	char		density[64];
	List	   *nodes = load_shard_nodes(relid);
	ListCell   *lc;
	double		rows = 0;

	snprintf(density, sizeof(density), "%.6f", rows_per_block_for_width(relid));
	foreach(lc, nodes)
	{
		NodeHolders *node = (NodeHolders *) lfirst(lc);
		const char *params[2] = {node->shards, density};
		PGconn	   *conn = connection_to(&node->node, arg);
		PGresult   *res = citus_node_query(conn, &node->node, sql_citus_show_shards(), 0, NULL);

		PQclear(res);
		res = citus_node_query(conn, &node->node, sql_citus_shard_row_estimate(), 2, params);
		rows += strtod(PQgetvalue(res, 0, 0), NULL);
		PQclear(res);
	}
	return rows;
}

/*
 * expression => on a distributed or reference table: refused before the
 * expression is even analysed (its probe would run through Citus).
 */
void
citus_refuse_expression(BackfillTarget *target)
{
	CitusTableKind kind = citus_table_kind(target->relid);

	if (kind == CITUS_TABLE_NONE || kind == CITUS_TABLE_OTHER)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("safe_backfill: %s: expression => is not supported for a Citus distributed or reference table",
					target->display),
			 errdetail("Its rows are filled on the nodes that hold its shards, where the expression's table and the tables it reads have other names. Nothing was changed."),
			 errhint("Fill it with a value, or run the UPDATE with the expression through Citus in batches of your own.")));
}

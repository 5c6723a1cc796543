/*
 * citus_nodes.h
 *		What Citus says about a table, and the nodes that hold its shards.
 */
#ifndef SAFE_BACKFILL_CITUS_NODES_H
#define SAFE_BACKFILL_CITUS_NODES_H

#include "safe_backfill.h"

#include "libpq-fe.h"

typedef enum CitusTableKind
{
	CITUS_TABLE_NONE,			/* not a Citus table (or no Citus) */
	CITUS_TABLE_DISTRIBUTED,	/* hash-distributed or single-shard: per shard */
	CITUS_TABLE_REFERENCE,		/* a copy on every node: coordinator batches */
	CITUS_TABLE_OTHER			/* Citus local, append or range tables */
} CitusTableKind;

/* One shard and the node that holds its active placement. */
typedef struct ShardTask
{
	int64		shardid;
	int			range_no;		/* its range in the coordinator's job (0: none) */
	char	   *shard_name;		/* quoted, qualified */
	char	   *host;
	int			port;
	bool		done;
} ShardTask;

extern bool citus_is_loaded(void);
extern CitusTableKind citus_table_kind(Oid relid);
extern void citus_set_local_lock_timeout(int ms);
extern void citus_refuse_expression(BackfillTarget *target);
/* the caller's connection to a node (it stays the caller's) */
typedef PGconn *(*CitusNodeConnection) (ShardTask *node, void *arg);

extern double citus_estimate_rows(Oid relid, CitusNodeConnection connection_to, void *arg);
extern bool citus_wait_for_shard_lock_holders(BackfillTarget *target, int timeout_ms,
											  char **holders);

/* connections to a node, as the current user, values always as parameters */
extern PGconn *citus_node_connect(ShardTask *task);
extern void citus_node_relay_notices(PGconn *conn, ShardTask *task);
extern void citus_node_raise_error(ShardTask *task, PGresult *res, PGconn *conn);
extern PGresult *citus_node_wait_for_result(PGconn *conn, ShardTask *task);
extern PGresult *citus_node_query(PGconn *conn, ShardTask *task, const char *sql,
								  int nparams, const char *const *params);
extern void citus_node_query_each(PGconn *conn, ShardTask *task, const char *sql,
								  PGresult **results, int nresults);

#endif							/* SAFE_BACKFILL_CITUS_NODES_H */

/*
 * safe_backfill.c
 *		SQL-callable entry points and settings of the safe_backfill extension.
 *
 * This file only parses and checks arguments; the work is done in src/.
 */
#include "safe_backfill.h"
#include "src/backfill.h"
#include "src/citus_nodes.h"
#include "src/detached.h"
#include "src/expression.h"
#include "src/jobs.h"
#include "src/not_null.h"
#include "src/replicas.h"
#include "src/request.h"
#include "src/settings.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/value.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

/*
 * The extension's SQL objects must be the version this library was built
 * for: after a new library is installed, its tables and view stay those of
 * the old version until ALTER EXTENSION ... UPDATE.  Say so before anything
 * is done, instead of failing later on a missing column.
 */
static void
require_sql_version(const char *procname)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("safe_backfill"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (version != NULL && strcmp(version, SAFE_BACKFILL_SQL_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: the extension's SQL objects are version %s, this library needs version %s",
						procname, version, SAFE_BACKFILL_SQL_VERSION),
				 errdetail("A new safe_backfill library was installed, but the extension in this database was not updated; nothing was changed."),
				 errhint("Run %s", sql_hint_update_extension())));
}

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	define_settings();
	if (process_shared_preload_libraries_in_progress)
		detached_register_launcher();
}

/*
 * A procedure can commit only when CALLed on its own: not inside BEGIN, not
 * from a function, not from a procedure with SET or SECURITY DEFINER.  Say
 * which case it is and what to change, before anything else happens.
 */
static void
require_nonatomic_call(FunctionCallInfo fcinfo, const char *procname,
					   const char *commits)
{
	if (fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic)
		return;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
			 errmsg("%s cannot run inside a transaction block or a function", procname),
			 IsTransactionBlock() ?
			 errdetail("The CALL runs inside a transaction block (BEGIN ... COMMIT), where a procedure cannot commit; %s commits %s.", procname, commits) :
			 errdetail("The CALL runs inside a function, or a procedure with a SET clause or SECURITY DEFINER, where a procedure cannot commit; %s commits %s.", procname, commits),
			 errhint("Run CALL %s(...) as a statement of its own with autocommit on: not after BEGIN, and not in a query string with other statements (psql -c 'SET ...; CALL ...'). In a Django migration, set atomic = False on the Migration class.", procname)));
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_backfill_forget(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_backfill_forget);

/*
 * SELECT safe_backfill_forget(tbl regclass DEFAULT NULL,
 *							   older_than interval DEFAULT '0 s')
 */
Datum
safe_backfill_forget(PG_FUNCTION_ARGS)
{
	require_sql_version("safe_backfill_forget");
	require_argument(fcinfo, 1, "older_than");
	PG_RETURN_INT64(jobs_forget_finished(fcinfo->flinfo->fn_oid,
										 PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0),
										 PG_GETARG_INTERVAL_P(1)));
}

/* The request's texts, copied from the call's memory into the current context. */
static char *
copy_text(const char *text)
{
	return text ? pstrdup(text) : NULL;
}

/*
 * A checked request, run in this session: what a CALL of safe_backfill,
 * safe_update and safe_delete does once its arguments are checked.
 */
static void
run_request(BackfillRequest *req, const char *procname)
{
	BackfillTarget *target;

	/* Allocations from here on live in the SPI procedure context, which survives our commits. */
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "%s: SPI_connect_ext failed", procname);
	req->colname = copy_text(req->colname);
	req->expression = copy_text(req->expression);
	req->set_text = copy_text(req->set_text);
	req->where_text = copy_text(req->where_text);
	target = request_target(req);
	request_run(target, req);
	SPI_finish();
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_backfill(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_backfill);

/*
 * CALL safe_backfill(tbl regclass, col name, value anycompatible,
 *					  batch_size integer DEFAULT 10000, pause_ms integer DEFAULT 0,
 *					  set_not_null boolean DEFAULT false,
 *					  target_batch_ms integer DEFAULT NULL,
 *					  max_replica_lag interval DEFAULT NULL,
 *					  workers integer DEFAULT 1, resume boolean DEFAULT true,
 *					  expression text DEFAULT NULL)
 *
 * value is DEFAULT NULL only so that expression => '...' can stand in for
 * it; exactly one of the two is given.
 */
Datum
safe_backfill(PG_FUNCTION_ARGS)
{
	BackfillRequest req;

	require_nonatomic_call(fcinfo, "safe_backfill", "after every batch");
	require_sql_version("safe_backfill");
	request_from_arguments(fcinfo, &req);
	run_request(&req, "safe_backfill");
	PG_RETURN_VOID();
}

/* safe_update's and safe_delete's body: the same run as safe_backfill's. */
static void
run_row_change(FunctionCallInfo fcinfo, ChangeKind kind, const char *procname)
{
	BackfillRequest req;

	require_nonatomic_call(fcinfo, procname, "after every batch");
	require_sql_version(procname);
	request_change_from_arguments(fcinfo, kind, &req);
	run_request(&req, procname);
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_update(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_update);

/*
 * CALL safe_update(tbl regclass, set text, "where" text DEFAULT NULL,
 *					batch_size integer DEFAULT 10000, pause_ms integer DEFAULT 0,
 *					target_batch_ms integer DEFAULT NULL,
 *					max_replica_lag interval DEFAULT NULL,
 *					workers integer DEFAULT 1, resume boolean DEFAULT true,
 *					dry_run boolean DEFAULT false)
 */
Datum
safe_update(PG_FUNCTION_ARGS)
{
	run_row_change(fcinfo, CHANGE_UPDATE, "safe_update");
	PG_RETURN_VOID();
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_delete(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_delete);

/*
 * CALL safe_delete(tbl regclass, "where" text,
 *					batch_size integer DEFAULT 10000, pause_ms integer DEFAULT 0,
 *					target_batch_ms integer DEFAULT NULL,
 *					max_replica_lag interval DEFAULT NULL,
 *					workers integer DEFAULT 1, resume boolean DEFAULT true,
 *					dry_run boolean DEFAULT false)
 */
Datum
safe_delete(PG_FUNCTION_ARGS)
{
	run_row_change(fcinfo, CHANGE_DELETE, "safe_delete");
	PG_RETURN_VOID();
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_set_not_null(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_set_not_null);

/*
 * CALL safe_set_not_null(tbl regclass, col name, drop_check boolean DEFAULT NULL,
 *						  lock_timeout interval DEFAULT NULL,
 *						  max_attempts integer DEFAULT NULL)
 */
Datum
safe_set_not_null(PG_FUNCTION_ARGS)
{
	LockPolicy	policy;
	BackfillTarget *target;
	int			drop_check;

	require_nonatomic_call(fcinfo, "safe_set_not_null", "after every step");
	require_sql_version("safe_set_not_null");
	require_argument(fcinfo, 0, "tbl");
	require_argument(fcinfo, 1, "col");

	drop_check = PG_ARGISNULL(2) ? -1 : (PG_GETARG_BOOL(2) ? 1 : 0);
	policy.lock_timeout_ms = PG_ARGISNULL(3) ? safe_backfill_lock_timeout_ms
		: interval_argument_ms(fcinfo, 3, "lock_timeout", 1, 60 * 1000,
							   "Every session that arrives while an ACCESS EXCLUSIVE request waits queues behind it for up to this long; keep it short and let the retries do the waiting.");
	policy.max_attempts = PG_ARGISNULL(4) ? safe_backfill_max_lock_attempts
		: PG_GETARG_INT32(4);
	require_range("max_attempts", policy.max_attempts, 1, 1000,
				  "Each attempt waits for the sessions holding locks on the table, then for at most lock_timeout in the lock queue.");

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_set_not_null: SPI_connect_ext failed");
	target = resolve_target(PG_GETARG_OID(0), pstrdup(NameStr(*PG_GETARG_NAME(1))));
	require_table_owner(target, "safe_set_not_null");

	run_set_not_null(target, &policy, drop_check);

	SPI_finish();
	PG_RETURN_VOID();
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_backfill_start(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_backfill_start);

/*
 * SELECT safe_backfill_start(<the arguments of safe_backfill>): every check
 * safe_backfill makes, then the run is queued and a background worker runs
 * it once the caller commits; returns the run's id at once.
 */
Datum
safe_backfill_start(PG_FUNCTION_ARGS)
{
	BackfillRequest req;

	require_sql_version("safe_backfill_start");
	request_from_arguments(fcinfo, &req);
	PG_RETURN_INT64(detached_start(&req));
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_backfill_wait(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_backfill_wait);

/* CALL safe_backfill_wait(job_id bigint, timeout interval DEFAULT NULL) */
Datum
safe_backfill_wait(PG_FUNCTION_ARGS)
{
	int			timeout_ms;

	require_nonatomic_call(fcinfo, "safe_backfill_wait", "between two looks at the run");
	require_sql_version("safe_backfill_wait");
	require_argument(fcinfo, 0, "job_id");
	timeout_ms = PG_ARGISNULL(1) ? -1
		: interval_argument_ms(fcinfo, 1, "timeout", 0, INT_MAX,
							   "It is how long to wait for the run to end; NULL waits as long as it takes.");
	detached_wait(fcinfo->flinfo->fn_oid, PG_GETARG_INT64(0), timeout_ms);
	PG_RETURN_VOID();
}

/* exported: 14 and 15 declare the function itself without PGDLLEXPORT */
PGDLLEXPORT Datum safe_backfill_cancel(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(safe_backfill_cancel);

/* SELECT safe_backfill_cancel(job_id bigint) */
Datum
safe_backfill_cancel(PG_FUNCTION_ARGS)
{
	require_sql_version("safe_backfill_cancel");
	require_argument(fcinfo, 0, "job_id");
	PG_RETURN_BOOL(detached_cancel(fcinfo->flinfo->fn_oid, PG_GETARG_INT64(0)));
}

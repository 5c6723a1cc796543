/*
 * safe_backfill.c
 *		SQL-callable entry points and settings of the safe_backfill extension.
 *
 * This file only parses and checks arguments; the work is done in src/.
 */
#include "safe_backfill.h"
#include "src/backfill.h"
#include "src/citus_nodes.h"
#include "src/expression.h"
#include "src/jobs.h"
#include "src/not_null.h"
#include "src/replicas.h"
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

static void
require_argument(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be NULL", name),
				 strcmp(name, "value") == 0 ?
				 errdetail("A backfill replaces NULL with a value; NULL would change nothing.") :
				 errdetail("Nothing was changed."),
				 errhint("Pass a non-NULL %s.", name)));
}

/*
 * value and expression both default to NULL: exactly one of them must be
 * given.  Neither is the old "value is NULL" error (value => NULL and a call
 * with neither cannot be told apart, and mean the same mistake).  Returns the
 * expression's text, or NULL for a value.
 */
static char *
value_or_expression(FunctionCallInfo fcinfo)
{
	bool		has_value = !PG_ARGISNULL(2);
	bool		has_expression = !PG_ARGISNULL(10);

	if (has_value && has_expression)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("safe_backfill takes a value or an expression, not both"),
				 errdetail("value is written as it is into every NULL; expression is computed for each row. Nothing was changed."),
				 errhint("Pass value => ... for one value, or expression => '...' for a value computed from each row.")));
	if (!has_value && !has_expression)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"value\" must not be NULL"),
				 errdetail("A backfill replaces NULL with a value; NULL would change nothing."),
				 errhint("Pass a non-NULL value, or expression => '...' to compute one for each row.")));
	return has_expression ? text_to_cstring(PG_GETARG_TEXT_PP(10)) : NULL;
}

static void
require_range(const char *name, int value, int min, int max, const char *why)
{
	if (value >= min && value <= max)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be between %d and %d, not %d", name, min, max, value),
			 errdetail("%s", why),
			 errhint("Nothing was changed; call it again with a %s in range.", name)));
}

/* An interval argument in milliseconds, checked against [min_ms, max_ms]. */
static int
interval_argument_ms(FunctionCallInfo fcinfo, int argno, const char *name,
					 int min_ms, int max_ms, const char *why)
{
	Interval   *iv = PG_GETARG_INTERVAL_P(argno);
	double		ms;

	ms = (double) iv->time / 1000.0 +
		((double) iv->day + (double) iv->month * DAYS_PER_MONTH) * SECS_PER_DAY * 1000.0;
	if (ms < min_ms || ms > max_ms)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %d ms and %d s, not %s", name,
						min_ms, max_ms / 1000,
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(iv)))),
				 errdetail("%s", why),
				 errhint("Nothing was changed; call it again with a %s in range.", name)));
	return (int) ms;
}

/*
 * set_not_null => true after an expression run that left rows NULL: the
 * promotion would fail on them anyway; say why they are NULL.  The run
 * itself is done (recorded so): every row the expression gives a value for
 * was filled.
 */
static void
refuse_not_null_over_expression_nulls(BackfillTarget *target)
{
	if (target->written.expression == NULL || target->run.expression_nulls == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_NOT_NULL_VIOLATION),
			 errmsg("safe_backfill: %s: cannot set NOT NULL: " INT64_FORMAT " %s still NULL because the expression gave NULL for %s",
					target->display, target->run.expression_nulls,
					target->run.expression_nulls == 1 ? "row is" : "rows are",
					target->run.expression_nulls == 1 ? "it" : "them"),
			 errdetail("Every row the expression gives a value for was filled and committed, and the run is recorded as done; the column was not made NOT NULL."),
			 errhint("Give those rows a value (a second call with an expression such as COALESCE(<expression>, <fallback>) writes only the rows still NULL), then call safe_set_not_null.")));
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
	BackfillOptions opts;
	BackfillTarget *target;
	Oid			relid;
	char	   *colname;
	Oid			valtype;
	char	   *expression;

	require_nonatomic_call(fcinfo, "safe_backfill", "after every batch");
	require_sql_version("safe_backfill");
	require_argument(fcinfo, 0, "tbl");
	require_argument(fcinfo, 1, "col");
	expression = value_or_expression(fcinfo);
	require_argument(fcinfo, 3, "batch_size");
	require_argument(fcinfo, 4, "pause_ms");
	require_argument(fcinfo, 5, "set_not_null");
	require_argument(fcinfo, 8, "workers");
	require_argument(fcinfo, 9, "resume");

	opts.batch_size = PG_GETARG_INT32(3);
	opts.pause_ms = PG_GETARG_INT32(4);
	opts.set_not_null = PG_GETARG_BOOL(5);
	opts.target_batch_ms = PG_ARGISNULL(6) ? safe_backfill_target_batch_ms
		: PG_GETARG_INT32(6);
	opts.batch_lock_timeout_ms = safe_backfill_batch_lock_timeout_ms;
	opts.max_batch_retries = safe_backfill_max_batch_retries;
	opts.max_replica_lag_ms = PG_ARGISNULL(7) ? safe_backfill_max_replica_lag_ms
		: interval_argument_ms(fcinfo, 7, "max_replica_lag", 0, 3600 * 1000,
							   "It is how far behind a standby may replay before safe_backfill waits; 0 does not watch standbys.");
	opts.max_replica_wait_ms = safe_backfill_max_replica_wait_ms;
	opts.procoid = fcinfo->flinfo->fn_oid;
	opts.workers = PG_GETARG_INT32(8);
	opts.resume = PG_GETARG_BOOL(9);
	/*
	 * Alone, a serial run has no statements of its own running beside it to
	 * wait for; beside other runs (a Citus node filling several shards) it
	 * waits for them as parallel workers wait for each other.
	 */
	opts.reuse_lag = safe_backfill_round_horizon_wait ? CONCURRENT_REUSE_LAG : 0;
	require_range("workers", opts.workers, 1, 64,
				  "workers is how many background workers split the main pass; 1 runs it in this session.");
	require_range("batch_size", opts.batch_size, 1, SAFE_BACKFILL_MAX_BATCH_SIZE,
				  "Each batch is one transaction that holds its row locks until it commits; larger batches would block other writers.");
	require_range("pause_ms", opts.pause_ms, 0, 60 * 1000,
				  "pause_ms is the sleep between two batches, in milliseconds.");
	require_range("target_batch_ms", opts.target_batch_ms, 0, 60 * 1000,
				  "target_batch_ms is the time each batch should take, in milliseconds; 0 keeps batches at batch_size rows.");

	relid = PG_GETARG_OID(0);
	valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	/* Allocations from here on live in the SPI procedure context, which survives our commits. */
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill: SPI_connect_ext failed");
	colname = pstrdup(NameStr(*PG_GETARG_NAME(1)));
	if (expression)
		expression = pstrdup(expression);

	if (opts.max_replica_lag_ms > 0)
		require_replica_visibility();
	PushActiveSnapshot(GetTransactionSnapshot());
	target = resolve_target(relid, colname);
	check_backfill_privileges(target);
	reject_instead_rules(target);
	if (opts.set_not_null)
		require_table_owner(target, "safe_backfill(..., set_not_null => true)");
	if (expression)
	{
		citus_refuse_expression(target);
		prepare_expression(target, expression);
	}
	else
		coerce_value_to_column(target, PG_GETARG_DATUM(2), valtype);
	PopActiveSnapshot();

	if (target->attnotnull)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: column is already NOT NULL, nothing to fill",
						target->display)));
	else
	{
		run_backfill(target, &opts);
		if (opts.set_not_null)
		{
			LockPolicy	policy = {safe_backfill_lock_timeout_ms,
			safe_backfill_max_lock_attempts};

			refuse_not_null_over_expression_nulls(target);
			run_set_not_null(target, &policy, -1);
		}
	}

	SPI_finish();
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

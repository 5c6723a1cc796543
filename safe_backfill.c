/*
 * safe_backfill.c
 *		SQL-callable entry points and settings of the safe_backfill extension.
 *
 * This file only parses and checks arguments; the work is done in src/.
 */
#include "safe_backfill.h"

#include "access/xact.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

int			safe_backfill_progress_interval_ms = 1000;
int			safe_backfill_iteration = ITERATE_AUTO;

static const struct config_enum_entry iteration_options[] = {
	{"auto", ITERATE_AUTO, false},
	{"key", ITERATE_KEY, false},
	{"ctid", ITERATE_CTID, false},
	{NULL, 0, false}
};
int			safe_backfill_lock_timeout_ms = 100;
int			safe_backfill_max_lock_attempts = 30;

void		_PG_init(void);

void
_PG_init(void)
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

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("safe_backfill");
#else
	EmitWarningsOnPlaceholders("safe_backfill");
#endif
}

/*
 * A procedure can commit only when CALLed on its own: not inside BEGIN, not
 * from a function, not from a procedure with SET or SECURITY DEFINER.  Say
 * which case it is and what to change, before anything else happens.
 */
void
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

PG_FUNCTION_INFO_V1(safe_backfill);

/*
 * CALL safe_backfill(tbl regclass, col name, value anycompatible,
 *					  batch_size integer DEFAULT 10000, pause_ms integer DEFAULT 0)
 */
Datum
safe_backfill(PG_FUNCTION_ARGS)
{
	BackfillOptions opts;
	BackfillTarget *target;
	Oid			relid;
	char	   *colname;
	Oid			valtype;

	require_nonatomic_call(fcinfo, "safe_backfill", "after every batch");
	require_argument(fcinfo, 0, "tbl");
	require_argument(fcinfo, 1, "col");
	require_argument(fcinfo, 2, "value");
	require_argument(fcinfo, 3, "batch_size");
	require_argument(fcinfo, 4, "pause_ms");
	require_argument(fcinfo, 5, "set_not_null");

	opts.batch_size = PG_GETARG_INT32(3);
	opts.pause_ms = PG_GETARG_INT32(4);
	opts.set_not_null = PG_GETARG_BOOL(5);
	require_range("batch_size", opts.batch_size, 1, SAFE_BACKFILL_MAX_BATCH_SIZE,
				  "Each batch is one transaction that holds its row locks until it commits; larger batches would block other writers.");
	require_range("pause_ms", opts.pause_ms, 0, 60 * 1000,
				  "pause_ms is the sleep between two batches, in milliseconds.");

	relid = PG_GETARG_OID(0);
	valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	/* Allocations from here on live in the SPI procedure context, which survives our commits. */
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill: SPI_connect_ext failed");
	colname = pstrdup(NameStr(*PG_GETARG_NAME(1)));

	PushActiveSnapshot(GetTransactionSnapshot());
	target = resolve_target(relid, colname);
	check_backfill_privileges(target);
	if (opts.set_not_null)
		require_table_owner(target, "safe_backfill(..., set_not_null => true)");
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

			run_set_not_null(target, &policy, -1);
		}
	}

	SPI_finish();
	PG_RETURN_VOID();
}

/* lock_timeout argument: NULL means the GUC; otherwise 1 ms to 60 s. */
static int
lock_timeout_argument(FunctionCallInfo fcinfo, int argno)
{
	Interval   *iv;
	double		ms;

	if (PG_ARGISNULL(argno))
		return safe_backfill_lock_timeout_ms;
	iv = PG_GETARG_INTERVAL_P(argno);
	ms = (double) iv->time / 1000.0 +
		((double) iv->day + (double) iv->month * DAYS_PER_MONTH) * SECS_PER_DAY * 1000.0;
	if (ms < 1 || ms > 60 * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lock_timeout must be between 1 ms and 60 s, not %s",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(iv)))),
				 errdetail("Every session that arrives while an ACCESS EXCLUSIVE request waits queues behind it for up to this long."),
				 errhint("Nothing was changed; use a short timeout such as '100ms' and let the retries do the waiting.")));
	return (int) ms;
}

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
	require_argument(fcinfo, 0, "tbl");
	require_argument(fcinfo, 1, "col");

	drop_check = PG_ARGISNULL(2) ? -1 : (PG_GETARG_BOOL(2) ? 1 : 0);
	policy.lock_timeout_ms = lock_timeout_argument(fcinfo, 3);
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

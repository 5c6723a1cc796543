/*
 * safe_backfill.c
 *		SQL-callable entry points and settings of the safe_backfill extension.
 *
 * This file only parses and checks arguments; the work is done in src/.
 */
#include "safe_backfill.h"

#include "access/xact.h"
#include "nodes/parsenodes.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

int			safe_backfill_progress_interval_ms = 1000;

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
require_nonatomic_call(FunctionCallInfo fcinfo, const char *procname)
{
	if (fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic)
		return;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
			 errmsg("%s cannot run inside a transaction block or a function", procname),
			 IsTransactionBlock() ?
			 errdetail("The CALL runs inside a transaction block (BEGIN ... COMMIT), where a procedure cannot commit; %s commits after every batch.", procname) :
			 errdetail("The CALL runs inside a function, or a procedure with a SET clause or SECURITY DEFINER, where a procedure cannot commit; %s commits after every batch.", procname),
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

	require_nonatomic_call(fcinfo, "safe_backfill");
	require_argument(fcinfo, 0, "tbl");
	require_argument(fcinfo, 1, "col");
	require_argument(fcinfo, 2, "value");
	require_argument(fcinfo, 3, "batch_size");
	require_argument(fcinfo, 4, "pause_ms");

	opts.batch_size = PG_GETARG_INT32(3);
	opts.pause_ms = PG_GETARG_INT32(4);
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
	coerce_value_to_column(target, PG_GETARG_DATUM(2), valtype);
	PopActiveSnapshot();

	if (target->attnotnull)
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: column is already NOT NULL, nothing to fill",
						target->display)));
	else
		run_backfill(target, &opts);

	SPI_finish();
	PG_RETURN_VOID();
}

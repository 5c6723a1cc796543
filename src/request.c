/*
 * request.c
 *		The arguments of safe_backfill, checked once, and the run they ask
 *		for: the same checks and the same run for a CALL in the caller's
 *		session and for a detached run (safe_backfill_start), whose worker
 *		resolves and checks the table again before it runs.
 */
#include "safe_backfill.h"
#include "src/backfill.h"
#include "src/citus_nodes.h"
#include "src/expression.h"
#include "src/keys.h"
#include "src/not_null.h"
#include "src/replicas.h"
#include "src/request.h"
#include "src/settings.h"
#include "src/target.h"
#include "src/value.h"

#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

void
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

void
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
int
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
 * The options that only settings give (no argument of their own): read when
 * the run starts, in the caller's session or, for a detached run, in its
 * worker once the caller's settings are restored.
 */
void
request_options_from_settings(BackfillOptions *opts)
{
	opts->batch_lock_timeout_ms = safe_backfill_batch_lock_timeout_ms;
	opts->max_batch_retries = safe_backfill_max_batch_retries;
	opts->max_replica_wait_ms = safe_backfill_max_replica_wait_ms;
	opts->reuse_lag = 0;
	opts->round_waits = safe_backfill_round_horizon_wait;
}

/*
 * Every argument check of safe_backfill(tbl, col, value, batch_size,
 * pause_ms, set_not_null, target_batch_ms, max_replica_lag, workers, resume,
 * expression), in the order a CALL makes them; nothing is looked up yet.
 */
void
request_from_arguments(FunctionCallInfo fcinfo, BackfillRequest *req)
{
	BackfillOptions *opts = &req->opts;

	memset(req, 0, sizeof(BackfillRequest));
	require_argument(fcinfo, 0, "tbl");
	require_argument(fcinfo, 1, "col");
	req->expression = value_or_expression(fcinfo);
	require_argument(fcinfo, 3, "batch_size");
	require_argument(fcinfo, 4, "pause_ms");
	require_argument(fcinfo, 5, "set_not_null");
	require_argument(fcinfo, 8, "workers");
	require_argument(fcinfo, 9, "resume");

	opts->batch_size = PG_GETARG_INT32(3);
	opts->pause_ms = PG_GETARG_INT32(4);
	opts->set_not_null = PG_GETARG_BOOL(5);
	opts->target_batch_ms = PG_ARGISNULL(6) ? safe_backfill_target_batch_ms
		: PG_GETARG_INT32(6);
	opts->max_replica_lag_ms = PG_ARGISNULL(7) ? safe_backfill_max_replica_lag_ms
		: interval_argument_ms(fcinfo, 7, "max_replica_lag", 0, 3600 * 1000,
							   "It is how far behind a standby may replay before safe_backfill waits; 0 does not watch standbys.");
	opts->procoid = fcinfo->flinfo->fn_oid;
	opts->workers = PG_GETARG_INT32(8);
	opts->resume = PG_GETARG_BOOL(9);
	request_options_from_settings(opts);
	require_range("workers", opts->workers, 1, 64,
				  "workers is how many background workers split the main pass; 1 runs it in this session.");
	require_range("batch_size", opts->batch_size, 1, SAFE_BACKFILL_MAX_BATCH_SIZE,
				  "Each batch is one transaction that holds its row locks until it commits; larger batches would block other writers.");
	require_range("pause_ms", opts->pause_ms, 0, 60 * 1000,
				  "pause_ms is the sleep between two batches, in milliseconds.");
	require_range("target_batch_ms", opts->target_batch_ms, 0, 60 * 1000,
				  "target_batch_ms is the time each batch should take, in milliseconds; 0 keeps batches at batch_size rows.");

	req->relid = PG_GETARG_OID(0);
	req->colname = pstrdup(NameStr(*PG_GETARG_NAME(1)));
	if (req->expression == NULL)
	{
		req->valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);
		req->value = PG_GETARG_DATUM(2);
	}
}

/*
 * A detached run's value, recorded as the column type's canonical text
 * (keys.c): read back under the same settings it was written in, like any
 * literal of the column's type.
 */
static void
coerce_canonical_text(BackfillTarget *target, const char *text)
{
	int			nest = NewGUCNestLevel();
	int			i;

	for (i = 0; i < canonical_setting_count(); i++)
	{
		const char *name;
		const char *value;

		canonical_setting(i, &name, &value);
		(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	coerce_value_to_column(target, CStringGetTextDatum(text), TEXTOID);
	AtEOXact_GUC(true, nest);
}

/*
 * Resolve the table and column, and check what a run needs of them and of
 * the caller: privileges, no INSTEAD rules, ownership for set_not_null, the
 * value or the expression.  In an SPI connection; the result lives in its
 * procedure context.
 */
BackfillTarget *
request_target(BackfillRequest *req)
{
	BackfillTarget *target;

	if (req->opts.max_replica_lag_ms > 0)
		require_replica_visibility();
	PushActiveSnapshot(GetTransactionSnapshot());
	target = resolve_target(req->relid, req->colname);
	check_backfill_privileges(target);
	reject_instead_rules(target);
	if (req->opts.set_not_null)
		require_table_owner(target, "safe_backfill(..., set_not_null => true)");
	if (req->expression)
	{
		citus_refuse_expression(target);
		prepare_expression(target, req->expression);
	}
	else if (req->value_text)
		coerce_canonical_text(target, req->value_text);
	else
		coerce_value_to_column(target, req->value, req->valtype);
	PopActiveSnapshot();
	return target;
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

/* The run, then the promotion if asked for: what a CALL and a detached worker both do. */
void
request_run(BackfillTarget *target, const BackfillRequest *req)
{
	if (target->attnotnull)
	{
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: column is already NOT NULL, nothing to fill",
						target->display)));
		return;
	}
	run_backfill(target, &req->opts);
	if (req->opts.set_not_null)
	{
		LockPolicy	policy = {safe_backfill_lock_timeout_ms,
		safe_backfill_max_lock_attempts};

		refuse_not_null_over_expression_nulls(target);
		run_set_not_null(target, &policy, -1);
	}
}

/*
 * request.c
 *		The arguments of safe_backfill, checked once, and the run they ask
 *		for: the same checks and the same run for a CALL in the caller's
 *		session and for a detached run (safe_backfill_start), whose worker
 *		resolves and checks the table again before it runs.
 */
#include "safe_backfill.h"
#include "src/backfill.h"
#include "src/change.h"
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

static void batch_options_from_arguments(FunctionCallInfo fcinfo, int first,
										 int skip, BackfillOptions *opts);

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
	require_argument(fcinfo, 5, "set_not_null");

	opts->set_not_null = PG_GETARG_BOOL(5);
	batch_options_from_arguments(fcinfo, 3, 1, opts);

	req->relid = PG_GETARG_OID(0);
	req->colname = pstrdup(NameStr(*PG_GETARG_NAME(1)));
	if (req->expression == NULL)
	{
		req->valtype = get_fn_expr_argtype(fcinfo->flinfo, 2);
		req->value = PG_GETARG_DATUM(2);
	}
}

/*
 * The arguments every procedure that walks the table in batches takes, in
 * this order from argument first: batch_size, pause_ms, then (after skip
 * more: safe_backfill's set_not_null) target_batch_ms, max_replica_lag, workers
 * and resume.
 */
static void
batch_options_from_arguments(FunctionCallInfo fcinfo, int first, int skip,
							 BackfillOptions *opts)
{
	int			tb = first + 2 + skip;

	require_argument(fcinfo, first, "batch_size");
	require_argument(fcinfo, first + 1, "pause_ms");
	require_argument(fcinfo, tb + 2, "workers");
	require_argument(fcinfo, tb + 3, "resume");
	opts->batch_size = PG_GETARG_INT32(first);
	opts->pause_ms = PG_GETARG_INT32(first + 1);
	opts->target_batch_ms = PG_ARGISNULL(tb) ? safe_backfill_target_batch_ms
		: PG_GETARG_INT32(tb);
	opts->max_replica_lag_ms = PG_ARGISNULL(tb + 1) ? safe_backfill_max_replica_lag_ms
		: interval_argument_ms(fcinfo, tb + 1, "max_replica_lag", 0, 3600 * 1000,
							   "It is how far behind a standby may replay before safe_backfill waits; 0 does not watch standbys.");
	opts->procoid = fcinfo->flinfo->fn_oid;
	opts->workers = PG_GETARG_INT32(tb + 2);
	opts->resume = PG_GETARG_BOOL(tb + 3);
	request_options_from_settings(opts);
	require_range("workers", opts->workers, 1, 64,
				  "workers is how many background workers split the main pass; 1 runs it in this session.");
	require_range("batch_size", opts->batch_size, 1, SAFE_BACKFILL_MAX_BATCH_SIZE,
				  "Each batch is one transaction that holds its row locks until it commits; larger batches would block other writers.");
	require_range("pause_ms", opts->pause_ms, 0, 60 * 1000,
				  "pause_ms is the sleep between two batches, in milliseconds.");
	require_range("target_batch_ms", opts->target_batch_ms, 0, 60 * 1000,
				  "target_batch_ms is the time each batch should take, in milliseconds; 0 keeps batches at batch_size rows.");
}

/*
 * Every argument check of safe_update(tbl, set, "where", batch_size,
 * pause_ms, target_batch_ms, max_replica_lag, workers, resume, dry_run) and
 * safe_delete(tbl, "where", batch_size, ...), which has no set; nothing is
 * looked up yet.
 */
void
request_change_from_arguments(FunctionCallInfo fcinfo, ChangeKind kind, BackfillRequest *req)
{
	int			first = kind == CHANGE_UPDATE ? 3 : 2;
	int			where_arg = first - 1;

	memset(req, 0, sizeof(BackfillRequest));
	req->change = kind;
	require_argument(fcinfo, 0, "tbl");
	if (kind == CHANGE_UPDATE)
		require_argument(fcinfo, 1, "set");
	else if (PG_ARGISNULL(where_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"where\" of safe_delete must not be NULL"),
				 errdetail("safe_delete deletes the rows that match it; nothing was changed."),
				 errhint("To delete every row, use TRUNCATE; otherwise pass \"where\" => '...'.")));
	batch_options_from_arguments(fcinfo, first, 0, &req->opts);
	require_argument(fcinfo, first + 6, "dry_run");
	req->dry_run = PG_GETARG_BOOL(first + 6);
	req->relid = PG_GETARG_OID(0);
	if (kind == CHANGE_UPDATE)
		req->set_text = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(where_arg))
		req->where_text = text_to_cstring(PG_GETARG_TEXT_PP(where_arg));
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
	if (req->change != CHANGE_FILL)
	{
		target = resolve_target(req->relid, NULL);
		prepare_row_change(target, req->change, req->set_text, req->where_text, req->dry_run);
		check_backfill_privileges(target);
		reject_instead_rules(target);
		probe_row_change(target);
		PopActiveSnapshot();
		return target;
	}
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
	if (req->change == CHANGE_FILL && target->attnotnull)
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

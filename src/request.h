/*
 * request.h
 *		What a caller asked safe_backfill to do: its arguments, checked once,
 *		for a CALL in the caller's session and for a detached run alike.
 */
#ifndef SAFE_BACKFILL_REQUEST_H
#define SAFE_BACKFILL_REQUEST_H

#include "safe_backfill.h"

/*
 * A run as asked for, after every argument check: the options, and the value
 * as given (value/valtype), or as the canonical text a detached run recorded
 * (value_text), or the expression's text.
 */
typedef struct BackfillRequest
{
	Oid			relid;
	char	   *colname;
	Datum		value;
	Oid			valtype;
	char	   *value_text;
	char	   *expression;
	/* safe_update and safe_delete: what to change (CHANGE_FILL: safe_backfill) */
	ChangeKind	change;
	char	   *set_text;
	char	   *where_text;
	bool		dry_run;
	BackfillOptions opts;
} BackfillRequest;

extern void require_argument(FunctionCallInfo fcinfo, int argno, const char *name);
extern void require_range(const char *name, int value, int min, int max, const char *why);
extern int	interval_argument_ms(FunctionCallInfo fcinfo, int argno, const char *name,
								 int min_ms, int max_ms, const char *why);
extern void request_from_arguments(FunctionCallInfo fcinfo, BackfillRequest *req);
extern void request_change_from_arguments(FunctionCallInfo fcinfo, ChangeKind kind,
										  BackfillRequest *req);
extern void request_options_from_settings(BackfillOptions *opts);
extern BackfillTarget *request_target(BackfillRequest *req);
extern void request_run(BackfillTarget *target, const BackfillRequest *req);

#endif							/* SAFE_BACKFILL_REQUEST_H */

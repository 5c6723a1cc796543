/*
 * expression.c
 *		expression => '...': a value computed for each row.
 */
#include "safe_backfill.h"

void
prepare_expression(BackfillTarget *target, const char *text)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("expression => is not implemented yet")));
}

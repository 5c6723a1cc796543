/*
 * value.h
 *		Turn the caller's value (or an expression's result) into the column's type.
 */
#ifndef SAFE_BACKFILL_VALUE_H
#define SAFE_BACKFILL_VALUE_H

#include "safe_backfill.h"

extern void coerce_value_to_column(BackfillTarget *target, Datum value, Oid valtype);
extern Node *coerce_to_column(BackfillTarget *target, struct ParseState *pstate,
							  Node *expr, Oid exprtype, int location);

#endif							/* SAFE_BACKFILL_VALUE_H */

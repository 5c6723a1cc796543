/*
 * value.c
 *		Turn the caller's value into a value of the column's type, once.
 *
 * The value must fail here, before any row is touched, if the UPDATE would
 * reject it: a string too long for varchar(n), a domain CHECK, a malformed
 * date.  So it goes through the same coercions an assignment would: a text
 * argument is read like a literal by the type's input function, any other
 * type is converted by assignment casts, then length coercion and domain
 * constraints apply.
 */
#include "safe_backfill.h"
#include "src/value.h"

#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"

static const char *
column_type_name(BackfillTarget *target)
{
	return format_type_with_typemod(target->atttypid, target->atttypmod);
}

/* A text argument is an untyped literal: 'active', '42', '2024-01-01'. */
static Node *
value_as_expression(Datum value, Oid valtype, Oid *exprtype)
{
	int16		typlen;
	bool		typbyval;

	if (valtype == TEXTOID)
	{
		*exprtype = UNKNOWNOID;
		return (Node *) makeConst(UNKNOWNOID, -1, InvalidOid, -2,
								  CStringGetDatum(TextDatumGetCString(value)),
								  false, false);
	}

	get_typlenbyval(valtype, &typlen, &typbyval);
	*exprtype = valtype;
	return (Node *) makeConst(valtype, -1, get_typcollation(valtype), typlen,
							  value, false, typbyval);
}

/*
 * What an UPDATE's SET does to what it assigns: assignment casts, then the
 * column's typmod (length coercion) and domain constraints.  Values and
 * expressions (expression.c) both go through it.  NULL if no assignment
 * cast exists.
 */
Node *
coerce_to_column(BackfillTarget *target, ParseState *pstate, Node *expr,
				 Oid exprtype, int location)
{
	/*
	 * void is no value, yet its output function gives '', which an
	 * assignment to a string type would take through I/O conversion: every
	 * NULL would become an empty string.
	 */
	if (exprtype == VOIDOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("a value of type void cannot be assigned to column \"%s\" of type %s",
						target->colname, column_type_name(target)),
				 errdetail("A function returning void gives no value to write; nothing was changed."),
				 errhint("Pass a value, or an expression that computes one for each row."),
				 parser_errposition(pstate, location)));
	return coerce_to_target_type(pstate, expr, exprtype,
								 target->atttypid, target->atttypmod,
								 COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, location);
}

static Node *
assignment_coercion(BackfillTarget *target, Node *expr, Oid exprtype)
{
	Node	   *coerced;

	coerced = coerce_to_column(target, NULL, expr, exprtype, -1);
	if (coerced == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("value of type %s cannot be assigned to column \"%s\" of type %s",
						format_type_be(exprtype), target->colname,
						column_type_name(target)),
				 errdetail("There is no assignment cast from %s to %s; nothing was changed.",
						   format_type_be(exprtype), column_type_name(target)),
				 errhint("Pass the value as a quoted literal, or cast it to %s.",
						 column_type_name(target))));
	return coerced;
}

/*
 * Coerce and evaluate.  Errors keep their own SQLSTATE and message (value too
 * long, invalid input syntax, domain check violated) and gain a detail and
 * hint that say no row was touched.
 */
static Datum
evaluate_coercion(BackfillTarget *target, Node *expr, Oid exprtype)
{
	MemoryContext cxt = CurrentMemoryContext;
	Const	   *result = NULL;

	PG_TRY();
	{
		/* an untyped literal is already read by its input function here */
		Node	   *coerced = assignment_coercion(target, expr, exprtype);

		result = (Const *) evaluate_expr((Expr *) coerced, target->atttypid,
										 target->atttypmod,
										 get_typcollation(target->atttypid));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		if (edata->detail == NULL)
			edata->detail = psprintf("The value was checked against column \"%s\" (%s) of relation \"%s\" before any row was changed; nothing was changed.",
									 target->colname, column_type_name(target),
									 target->relname);
		if (edata->hint == NULL)
			edata->hint = psprintf("Pass a value that is valid for %s.",
								   column_type_name(target));
		ReThrowError(edata);
	}
	PG_END_TRY();

	if (!IsA(result, Const) || result->constisnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("value for column \"%s\" is NULL after conversion to %s",
						target->colname, column_type_name(target)),
				 errdetail("A backfill writes a value into every NULL; NULL would change nothing."),
				 errhint("Pass a non-NULL value.")));
	return result->constvalue;
}

void
coerce_value_to_column(BackfillTarget *target, Datum value, Oid valtype)
{
	Oid			exprtype;
	Node	   *expr = value_as_expression(value, valtype, &exprtype);

	target->written.value = evaluate_coercion(target, expr, exprtype);
}

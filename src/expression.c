/*
 * expression.c
 *		expression => '...': a value computed for each row, checked before
 *		any row changes.
 *
 * The text is the caller's own SQL, and it ends up inside our UPDATE (built
 * in sqlgen.c as SET col = (<text>\n)).  So it must be exactly one
 * expression, and nothing else: it is parsed on its own as the target list
 * of a SELECT (what PL/pgSQL does with its expressions) and refused unless
 * that SELECT is one unnamed target and nothing more - no second statement,
 * no FROM, no WHERE, no clause that could close our statement's parenthesis
 * and go on.  A comment at its end cannot swallow the rest of our statement:
 * the text is followed by a newline, and every statement built around it is
 * parsed again to prove it is still the one statement we meant (sqlgen.c).
 *
 * It is then analysed against the table, as an UPDATE's SET would be: in a
 * parse state whose only relation is the table, under its own name, so
 * "email" and "users.email" both work; its type must be assignable to the
 * column through the same coercions as a value (value.c); aggregates, window
 * functions and set-returning functions are refused, saying why.  Finally a
 * probe, SELECT (<text>) FROM the table LIMIT 0, is planned and started as
 * the caller: privileges on everything it reads are checked and constant
 * errors (1/0) raised, before the first batch.
 *
 * Errors point into the expression: their position is moved to an internal
 * query that is the expression's text (psql shows it under QUERY with a
 * caret), as PL/pgSQL does for its expressions.
 */
#include "safe_backfill.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/* For errors raised while the expression is parsed, analysed or probed. */
typedef struct ExpressionErrorContext
{
	BackfillTarget *target;
	const char *text;
} ExpressionErrorContext;

/*
 * A position an error gives is a position in the expression's text: show
 * that text as the internal query, with the cursor there, instead of
 * pointing into the CALL.
 */
static void
expression_error_callback(void *arg)
{
	ExpressionErrorContext *ctx = (ExpressionErrorContext *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(ctx->text);
	}
	errcontext("safe_backfill: %s: expression => %s", ctx->target->display,
			   quote_literal_cstr(ctx->text));
}

static void
refuse_shape(ParseState *pstate, int location, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("expression must be exactly one SQL expression"),
			 errdetail("It has %s. Nothing was changed.", what),
			 errhint("Pass what would follow SET column = in an UPDATE, such as lower(email) or (SELECT p.name FROM parents p WHERE p.id = parent_id)."),
			 parser_errposition(pstate, location)));
}

/* The location of the first of these clauses present, or -1. */
static int
first_location(List *list)
{
	return list != NIL ? exprLocation((Node *) linitial(list)) : -1;
}

/*
 * Parse the text as PL/pgSQL parses an expression (SELECT <text>), and keep
 * only a SELECT of one unnamed target and nothing else.
 */
static Node *
parse_one_expression(ParseState *pstate, const char *text)
{
	List	   *raw = raw_parser(text, RAW_PARSE_PLPGSQL_EXPR);
	SelectStmt *select;
	ResTarget  *res;

	if (list_length(raw) != 1 ||
		!IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt))
		refuse_shape(pstate, -1, "more than one statement");
	select = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;

	if (select->targetList == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("expression must not be empty"),
				 errdetail("Nothing was changed."),
				 errhint("Pass what would follow SET column = in an UPDATE, such as lower(email).")));
	if (list_length(select->targetList) > 1)
		refuse_shape(pstate, first_location(list_delete_first(list_copy(select->targetList))),
					 psprintf("%d expressions separated by commas", list_length(select->targetList)));
	if (select->distinctClause != NIL)
		refuse_shape(pstate, -1, "a DISTINCT clause");
	if (select->fromClause != NIL)
		refuse_shape(pstate, first_location(select->fromClause),
					 "a FROM clause (put a query over other tables in parentheses: a scalar subquery)");
	if (select->whereClause)
		refuse_shape(pstate, exprLocation(select->whereClause), "a WHERE clause");
	if (select->groupClause != NIL || select->havingClause)
		refuse_shape(pstate, first_location(select->groupClause), "a GROUP BY or HAVING clause");
	if (select->windowClause != NIL)
		refuse_shape(pstate, first_location(select->windowClause), "a WINDOW clause");
	if (select->sortClause != NIL)
		refuse_shape(pstate, first_location(select->sortClause), "an ORDER BY clause");
	if (select->limitCount || select->limitOffset)
		refuse_shape(pstate, exprLocation(select->limitCount ? select->limitCount : select->limitOffset),
					 "a LIMIT or OFFSET clause");
	if (select->lockingClause != NIL)
		refuse_shape(pstate, -1, "a FOR UPDATE or FOR SHARE clause");
	if (select->intoClause || select->withClause || select->valuesLists != NIL ||
		select->op != SETOP_NONE)
		refuse_shape(pstate, -1, "more than an expression");

	res = linitial_node(ResTarget, select->targetList);
	if (res->name != NULL)
		refuse_shape(pstate, res->location,
					 psprintf("a name for its value (AS %s); the value goes into the column",
							  quote_identifier(res->name)));
	if (IsA(res->val, ColumnRef) &&
		IsA(llast(((ColumnRef *) res->val)->fields), A_Star))
		refuse_shape(pstate, exprLocation(res->val), "a * that stands for several columns");
	return res->val;
}

/* Where the first set-returning function call is, or -1. */
static bool
srf_location_walker(Node *node, int *location)
{
	if (node == NULL)
		return false;
	if ((IsA(node, FuncExpr) && ((FuncExpr *) node)->funcretset) ||
		(IsA(node, OpExpr) && ((OpExpr *) node)->opretset))
	{
		*location = exprLocation(node);
		return true;
	}
	/* a set-returning function inside a subquery is the subquery's business */
	if (IsA(node, SubLink))
		return false;
	return expression_tree_walker(node, srf_location_walker, (void *) location);
}

/*
 * What an UPDATE's SET list allows, minus what has no meaning for one row
 * at a time: an aggregate or a window function needs other rows, a
 * set-returning function gives any number of values for one column.
 */
static void
refuse_other_rows(ParseState *pstate, Node *expr)
{
	int			location = -1;

	if (pstate->p_hasAggs)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("aggregate functions are not allowed in expression"),
				 errdetail("The expression is computed for each row on its own, in batches; an aggregate over the table would need every row at once. Nothing was changed."),
				 errhint("For a value computed over other rows, use a scalar subquery, such as (SELECT max(o.total) FROM orders o WHERE o.user_id = id)."),
				 parser_errposition(pstate, locate_agg_of_level(expr, 0))));
	if (pstate->p_hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("window functions are not allowed in expression"),
				 errdetail("The expression is computed for each row on its own, in batches; a window function would see only the rows of one batch. Nothing was changed."),
				 errhint("Compute the value with a scalar subquery over the table instead."),
				 parser_errposition(pstate, locate_windowfunc(expr))));
	if (pstate->p_hasTargetSRFs || expression_returns_set(expr))
	{
		(void) srf_location_walker(expr, &location);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-returning functions are not allowed in expression"),
				 errdetail("A column holds one value per row; a set-returning function gives any number of them. Nothing was changed."),
				 errhint("Pick one value, such as (SELECT min(x) FROM generate_series(...) x)."),
				 parser_errposition(pstate, location)));
	}
}

/* The expression's value must be assignable to the column, as a value's is. */
static void
require_assignable(ParseState *pstate, BackfillTarget *target, Node *expr)
{
	Oid			type = exprType(expr);
	const char *column_type = format_type_with_typemod(target->atttypid,
													   target->atttypmod);

	if (coerce_to_column(target, pstate, expr, type, exprLocation(expr)) != NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("expression of type %s cannot be assigned to column \"%s\" of type %s",
					format_type_be(type), target->colname, column_type),
			 errdetail("There is no assignment cast from %s to %s; nothing was changed.",
					   format_type_be(type), column_type),
			 errhint("Cast the expression: (...)::%s.", column_type),
			 parser_errposition(pstate, exprLocation(expr))));
}

/* The first temporary relation a range table of the tree reads, if any. */
static bool
temp_relation_walker(Node *node, Oid *relid)
{
	if (node == NULL)
		return false;
	/* nextval('seq'): a relation named by a regclass constant */
	if (IsA(node, Const) && ((Const *) node)->consttype == REGCLASSOID &&
		!((Const *) node)->constisnull &&
		get_rel_persistence(DatumGetObjectId(((Const *) node)->constvalue)) == RELPERSISTENCE_TEMP)
	{
		*relid = DatumGetObjectId(((Const *) node)->constvalue);
		return true;
	}
	if (IsA(node, Query))
	{
		ListCell   *lc;

		foreach(lc, ((Query *) node)->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (rte->rtekind == RTE_RELATION &&
				get_rel_persistence(rte->relid) == RELPERSISTENCE_TEMP)
			{
				*relid = rte->relid;
				return true;
			}
		}
		return query_tree_walker((Query *) node, temp_relation_walker, relid, 0);
	}
	return expression_tree_walker(node, temp_relation_walker, (void *) relid);
}

/*
 * A temporary table's rows live in this session's local buffers: workers
 * (parallel.c) cannot read them, and would find no row or stale pages.
 * Remember the first one the expression reads (a view over one is
 * temporary too; a sequence named by a regclass constant, as in
 * nextval('seq'), counts), so that the run stays in this session.  A function that
 * reads one is not seen here (README).
 */
static Oid
temp_relation_read(Node *expr)
{
	Oid			relid = InvalidOid;

	(void) temp_relation_walker(expr, &relid);
	return relid;
}

/* Analyse the expression against the table, as an UPDATE's SET list would. */
static void
analyse_against_table(BackfillTarget *target, const char *text, Node *raw,
					  ParseState *pstate)
{
	Relation	rel = table_open(target->relid, AccessShareLock);
	ParseNamespaceItem *nsitem;
	Node	   *expr;

	/* no alias: the table is known by its own name, as in our UPDATE */
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL,
										   false, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	/* the SELECT list's rules, so that aggregates and the rest get our messages */
	expr = transformExpr(pstate, raw, EXPR_KIND_SELECT_TARGET);
	refuse_other_rows(pstate, expr);
	assign_expr_collations(pstate, expr);
	require_assignable(pstate, target, expr);
	target->expression_temp_relid = temp_relation_read(expr);
	table_close(rel, NoLock);
}

/*
 * Plan and start SELECT (<text>) FROM the table LIMIT 0 as the caller:
 * permission checks on every table and column it reads, errors the planner
 * finds folding constants.  No row is read.
 */
static void
probe_expression(BackfillTarget *target)
{
	/*
	 * Not read-only: a subquery of the expression may lock what it reads
	 * (FOR SHARE), as it may in the batches' UPDATE; read-only SPI would
	 * refuse that as "not allowed in a non-volatile function".  The
	 * statement is our SELECT (require_one_statement) and reads no row.
	 */
	int			rc = SPI_execute(sql_expression_probe(target), false, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: checking the expression failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * Check expression => text against the table before any row changes, and
 * keep it in target->expression for the statements.  Runs in the caller's
 * session and in each parallel worker (under the caller's settings), so
 * both read the same names the same way.
 */
void
prepare_expression(BackfillTarget *target, const char *text)
{
	ExpressionErrorContext ctx = {target, text};
	ErrorContextCallback errcb;
	ParseState *pstate = make_parsestate(NULL);
	Node	   *raw;

	pstate->p_sourcetext = text;
	errcb.callback = expression_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	raw = parse_one_expression(pstate, text);
	analyse_against_table(target, text, raw, pstate);
	target->expression = pstrdup(text);
	target->expression_scs = standard_conforming_strings;
	target->expression_search_path = pstrdup(namespace_search_path);
	probe_expression(target);

	error_context_stack = errcb.previous;
	free_parsestate(pstate);
}

/*
 * Before every batch and the final count: the names of the expression
 * were resolved under the search_path it was checked with.  The expression
 * itself can change it (set_config('search_path', ..., false) in a
 * function it calls); the kept plans would then be analysed again under
 * the new one, and the same text would call other functions in the later
 * batches.  (standard_conforming_strings, which would change how its text
 * reads, is checked where statements are built: sqlgen.c.)
 */
void
recheck_expression_settings(BackfillTarget *target)
{
	if (target->expression == NULL ||
		strcmp(namespace_search_path, target->expression_search_path) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("safe_backfill: %s: search_path changed while the expression ran",
					target->display),
			 errdetail("The expression was checked with search_path = %s; under %s its names could mean other functions, operators or types, so no further batch runs. Batches committed so far stay.",
					   quote_literal_cstr(target->expression_search_path),
					   quote_literal_cstr(namespace_search_path)),
			 errhint("Do not change search_path in the expression (a function that needs its own can declare SET search_path); reset it and call safe_backfill again to resume.")));
}

/*
 * The final count of an expression run, with a fresh snapshot: the NULLs
 * left that the expression gives a value for (the run is done when there is
 * none), and in target->expression_nulls those it gives NULL for, which stay
 * NULL.  One statement, so both numbers come from the same snapshot.
 */
int64
count_computable_nulls(BackfillTarget *target)
{
	/* not read-only: SPI then takes a new snapshot for the statement */
	int			rc = SPI_execute(sql_count_computed_nulls(target), false, 0);
	bool		isnull;
	int64		computable;
	int64		all;

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "safe_backfill: counting the NULLs left failed: %s",
			 SPI_result_code_string(rc));
	computable = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
	all = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	target->expression_nulls = all - computable;
	return computable;
}

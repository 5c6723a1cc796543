/*
 * expression.c
 *		expression => '...': a value computed for each row, checked before
 *		any row changes.
 *
 * The text is the caller's own SQL.  It must be exactly one expression,
 * and nothing else: it is parsed on its own as the target list of a SELECT
 * (what PL/pgSQL does with its expressions) and refused unless that SELECT
 * is one unnamed target and nothing more.
 *
 * It is then analysed against the table, as an UPDATE's SET would be: in a
 * parse state whose only relation is the table, under its own name, so
 * "email" and "users.email" both work; its type must be assignable to the
 * column through the same coercions as a value (value.c); aggregates, window
 * functions and set-returning functions are refused, saying why.
 *
 * The tree so analysed is what every statement runs: no statement contains
 * the text.  Each is built with a placeholder (SQL_EXPRESSION_PLACE) and
 * prepared with a parser hook that puts a copy of the tree there
 * (prepare_statement), again whenever the plan cache analyses the statement
 * anew.  Functions, operators, types and the tables of its subqueries are
 * named by OID in the tree, so nothing created, renamed or put earlier in
 * search_path mid-run, and no setting that changes how text reads
 * (standard_conforming_strings), changes what the batches compute; parallel
 * workers get the tree, not the text.  Finally a probe, SELECT tableoid,
 * ctid, <tree> FROM the table LIMIT 0, is planned and started as the
 * caller: privileges on everything it reads are checked and constant errors
 * (1/0) raised, before the first batch.
 *
 * Errors point into the expression: their position is moved to an internal
 * query that is the expression's text (psql shows it under QUERY with a
 * caret), as PL/pgSQL does for its expressions.
 */
#include "safe_backfill.h"
#include "src/expression.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/value.h"

#include "access/sysattr.h"
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
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/*
 * A position an error gives is a position in the argument's text (parsed
 * after a prefix of offset characters): show that text as the internal
 * query, with the cursor there, instead of pointing into the CALL.
 */
static void
argument_error_callback(void *arg)
{
	ArgumentErrorContext *ctx = (ArgumentErrorContext *) arg;
	int			pos = geterrposition();

	if (pos > ctx->offset)
	{
		errposition(0);
		internalerrposition(pos - ctx->offset);
		internalerrquery(ctx->text);
	}
	else if (pos > 0)
		errposition(0);
	errcontext("%s: %s: %s => %s", ctx->target->change.procname, ctx->target->display,
			   ctx->argname, quote_literal_cstr(ctx->text));
}

/* Errors from here on point into argname's text, parsed after offset characters. */
void
push_argument_context(ArgumentErrorContext *ctx, BackfillTarget *target,
					  const char *argname, const char *text, int offset)
{
	ctx->target = target;
	ctx->argname = argname;
	ctx->text = text;
	ctx->offset = offset;
	ctx->callback.callback = argument_error_callback;
	ctx->callback.arg = ctx;
	ctx->callback.previous = error_context_stack;
	error_context_stack = &ctx->callback;
}

void
pop_argument_context(ArgumentErrorContext *ctx)
{
	error_context_stack = ctx->callback.previous;
}

/* What to pass instead, for each argument that takes one SQL expression. */
static const char *
shape_hint(const char *argname)
{
	if (strcmp(argname, "where") == 0)
		return "Pass what would follow WHERE in an UPDATE or a DELETE, such as status = 'old' AND created_at < now() - interval '90 days'.";
	return "Pass what would follow SET column = in an UPDATE, such as lower(email) or (SELECT p.name FROM parents p WHERE p.id = parent_id).";
}

static void
refuse_shape(ParseState *pstate, const char *argname, int location, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("%s must be exactly one SQL expression", argname),
			 errdetail("It has %s. Nothing was changed.", what),
			 errhint("%s", shape_hint(argname)),
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
Node *
parse_one_expression(ParseState *pstate, const char *text, const char *argname)
{
	List	   *raw = raw_parser(text, RAW_PARSE_PLPGSQL_EXPR);
	SelectStmt *select;
	ResTarget  *res;

	if (list_length(raw) != 1 ||
		!IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt))
		refuse_shape(pstate, argname, -1, "more than one statement");
	select = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;

	if (select->targetList == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must not be empty", argname),
				 errdetail("Nothing was changed."),
				 errhint("%s", shape_hint(argname))));
	if (list_length(select->targetList) > 1)
		refuse_shape(pstate, argname, first_location(list_delete_first(list_copy(select->targetList))),
					 psprintf("%d expressions separated by commas", list_length(select->targetList)));
	if (select->distinctClause != NIL)
		refuse_shape(pstate, argname, -1, "a DISTINCT clause");
	if (select->fromClause != NIL)
		refuse_shape(pstate, argname, first_location(select->fromClause),
					 "a FROM clause (put a query over other tables in parentheses: a scalar subquery)");
	if (select->whereClause)
		refuse_shape(pstate, argname, exprLocation(select->whereClause), "a WHERE clause");
	if (select->groupClause != NIL || select->havingClause)
		refuse_shape(pstate, argname, first_location(select->groupClause), "a GROUP BY or HAVING clause");
	if (select->windowClause != NIL)
		refuse_shape(pstate, argname, first_location(select->windowClause), "a WINDOW clause");
	if (select->sortClause != NIL)
		refuse_shape(pstate, argname, first_location(select->sortClause), "an ORDER BY clause");
	if (select->limitCount || select->limitOffset)
		refuse_shape(pstate, argname, exprLocation(select->limitCount ? select->limitCount : select->limitOffset),
					 "a LIMIT or OFFSET clause");
	if (select->lockingClause != NIL)
		refuse_shape(pstate, argname, -1, "a FOR UPDATE or FOR SHARE clause");
	if (select->intoClause || select->withClause || select->valuesLists != NIL ||
		select->op != SETOP_NONE)
		refuse_shape(pstate, argname, -1, "more than an expression");

	res = linitial_node(ResTarget, select->targetList);
	if (res->name != NULL)
		refuse_shape(pstate, argname, res->location,
					 psprintf("a name for its value (AS %s)", quote_identifier(res->name)));
	if (IsA(res->val, ColumnRef) &&
		IsA(llast(((ColumnRef *) res->val)->fields), A_Star))
		refuse_shape(pstate, argname, exprLocation(res->val), "a * that stands for several columns");
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
void
refuse_other_rows(ParseState *pstate, Node *expr, const char *argname)
{
	int			location = -1;

	if (pstate->p_hasAggs)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("aggregate functions are not allowed in %s", argname),
				 errdetail("The expression is computed for each row on its own, in batches; an aggregate over the table would need every row at once. Nothing was changed."),
				 errhint("For a value computed over other rows, use a scalar subquery, such as (SELECT max(o.total) FROM orders o WHERE o.user_id = id)."),
				 parser_errposition(pstate, locate_agg_of_level(expr, 0))));
	if (pstate->p_hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("window functions are not allowed in %s", argname),
				 errdetail("The expression is computed for each row on its own, in batches; a window function would see only the rows of one batch. Nothing was changed."),
				 errhint("Compute the value with a scalar subquery over the table instead."),
				 parser_errposition(pstate, locate_windowfunc(expr))));
	if (pstate->p_hasTargetSRFs || expression_returns_set(expr))
	{
		(void) srf_location_walker(expr, &location);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-returning functions are not allowed in %s", argname),
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

/* The first relation query's own range table reads for which test holds. */
static Oid
relation_in_range_table(Query *query, bool (*test) (Oid relid))
{
	ListCell   *lc;

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION && test(rte->relid))
			return rte->relid;
	}
	return InvalidOid;
}

static bool
relation_is_temporary(Oid relid)
{
	return get_rel_persistence(relid) == RELPERSISTENCE_TEMP;
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
		*relid = relation_in_range_table((Query *) node, relation_is_temporary);
		if (OidIsValid(*relid))
			return true;
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
Oid
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
	refuse_other_rows(pstate, expr, "expression");
	assign_expr_collations(pstate, expr);
	require_assignable(pstate, target, expr);
	target->written.temp_relid = temp_relation_read(expr);
	target->written.tree = expr;
	table_close(rel, NoLock);
}

/*
 * Plan and start SELECT tableoid, ctid, <tree> FROM the table LIMIT 0 as
 * the caller: permission checks on every table and column it reads,
 * errors the planner finds folding constants.  No row is read.
 */
static void
probe_expression(BackfillTarget *target)
{
	SPIPlanPtr	plan;
	int			rc;

	check_expression_privileges(target);
	plan = prepare_statement(target, sql_expression_probe(target), 0, NULL, 0);

	/*
	 * Not read-only: a subquery of the expression may lock what it reads
	 * (FOR SHARE), as it may in the batches' UPDATE; read-only SPI would
	 * refuse that as "not allowed in a non-volatile function".
	 */
	rc = execute_statement(plan, NULL, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: checking the expression failed: %s",
			 SPI_result_code_string(rc));
	SPI_freeplan(plan);
}

/*
 * Check expression => text against the table before any row changes, and
 * keep its text and its analysed tree for the statements.  Runs in the
 * caller's session only: parallel workers get the tree
 * (use_expression_tree).
 */
void
prepare_expression(BackfillTarget *target, const char *text)
{
	ArgumentErrorContext ctx;
	ParseState *pstate = make_parsestate(NULL);
	Node	   *raw;

	pstate->p_sourcetext = text;
	push_argument_context(&ctx, target, "expression", text, 0);
	raw = parse_one_expression(pstate, text, "expression");
	analyse_against_table(target, text, raw, pstate);
	target->written.expression = pstrdup(text);
	probe_expression(target);
	pop_argument_context(&ctx);
	free_parsestate(pstate);
}

/* In a parallel worker: the tree the caller's session analysed and checked. */
void
use_expression_tree(BackfillTarget *target, const char *text, Node *tree)
{
	target->written.expression = pstrdup(text);
	target->written.tree = tree;
}

/* ---------------------------------------------------------------------
 * Statements built around the tree
 * --------------------------------------------------------------------- */

/*
 * What the parser hook of a statement needs, for as long as its plan may be
 * analysed again: the target (its tree), and the types of the statement's
 * own $1..$n.
 */
typedef struct ExpressionStatement
{
	BackfillTarget *target;
	int			nargs;
	Oid		   *argtypes;
} ExpressionStatement;

static bool
relation_missing(Oid relid)
{
	return !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid));
}

static bool
function_missing(Oid funcid, void *context)
{
	return !SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(funcid));
}

/*
 * Whether a function the tree calls (for a function call, an operator, a
 * cast, ...) or a table one of its subqueries reads was dropped since it
 * was analysed; *kind says which.
 */
static bool
missing_object_walker(Node *node, const char **kind)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, function_missing, NULL))
	{
		*kind = "function";
		return true;
	}
	if (IsA(node, Query))
	{
		if (OidIsValid(relation_in_range_table((Query *) node, relation_missing)))
		{
			*kind = "table";
			return true;
		}
		return query_tree_walker((Query *) node, missing_object_walker, (void *) kind, 0);
	}
	return expression_tree_walker(node, missing_object_walker, (void *) kind);
}

/*
 * The tree names what it calls and reads by OID: if one of them was dropped
 * since it was analysed, say so, instead of the planner's "cache lookup
 * failed".
 */
static void
require_objects_exist(BackfillTarget *target, Node *tree)
{
	const char *kind = NULL;

	if (!missing_object_walker(tree, &kind))
		return;
	ereport(ERROR,
			(errcode(strcmp(kind, "function") == 0 ? ERRCODE_UNDEFINED_FUNCTION :
					 ERRCODE_UNDEFINED_TABLE),
			 errmsg("safe_backfill: %s: a %s the expression uses was dropped while it ran",
					target->display, kind),
			 errdetail("The expression's functions, operators and tables were looked up once, before the first batch; no further batch runs. Batches committed so far stay."),
			 errhint("Call safe_backfill again to resume: the expression is then looked up anew.")));
}

/*
 * Subqueries of the tree read tables that the parser would have locked:
 * lock them the same way.
 */
static bool
lock_sublink_relations(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		AcquireRewriteLocks((Query *) ((SubLink *) node)->subselect, true, false);
	return expression_tree_walker(node, lock_sublink_relations, context);
}

/*
 * The columns of the table the tree reads, for the statement's privilege
 * checks, marked as the parser marks each column it resolves: a Var of the
 * table at the tree's top level, or one level up for each subquery it is
 * in.
 */
typedef struct MarkColumns
{
	ParseState *pstate;
	int			depth;
} MarkColumns;

static bool
mark_columns_walker(Node *node, MarkColumns *mark)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		if (((Var *) node)->varlevelsup == mark->depth)
		{
			Var		   *var = copyObject((Var *) node);

			var->varlevelsup = 0;
			markVarForSelectPriv(mark->pstate, var);
		}
		return false;
	}
	if (IsA(node, Query))
	{
		bool		result;

		mark->depth++;
		result = query_tree_walker((Query *) node, mark_columns_walker, (void *) mark, 0);
		mark->depth--;
		return result;
	}
	return expression_tree_walker(node, mark_columns_walker, (void *) mark);
}

/*
 * The parse state of the query level whose first and only relation is the
 * table, where the statement's placeholders belong, and in *levels_up how
 * many levels of subquery pstate is below it: 0 where the placeholder is in
 * that query itself, 1 in the LATERAL subquery of sql_compute_rows, which
 * has no relation of its own.
 */
static ParseState *
table_parse_state(ParseState *pstate, BackfillTarget *target, int *levels_up)
{
	ParseState *level = pstate;

	*levels_up = 0;
	while (level != NULL && level->p_rtable == NIL)
	{
		level = level->parentParseState;
		(*levels_up)++;
	}
	if (level == NULL || rt_fetch(1, level->p_rtable)->relid != target->relid)
		elog(ERROR, "safe_backfill: the expression's place is not over table %s",
			 target->display);
	return level;
}

/*
 * A copy of the tree for the placeholder of the statement being analysed.
 * Every statement puts the placeholder where the table is the first and
 * only relation of the query, as it was for the analysis, or in a subquery
 * without relations below that query: the tree's Vars (varno 1) read it,
 * from as many levels up.
 */
static Node *
tree_for_statement(ParseState *pstate, BackfillTarget *target, Node *analysed)
{
	Node	   *tree;
	int			levels_up;
	MarkColumns mark = {table_parse_state(pstate, target, &levels_up), 0};

	tree = copyObject(analysed);
	require_objects_exist(target, tree);
	(void) lock_sublink_relations(tree, NULL);
	(void) mark_columns_walker(tree, &mark);
	if (levels_up > 0)
		IncrementVarSublevelsUp(tree, levels_up, 0);
	if (checkExprHasSubLink(tree))
		pstate->p_hasSubLinks = true;
	return tree;
}

/*
 * The ctid of the table's row, for SQL_ROW_TID_PLACE, marked as the parser
 * marks a column it resolves (its privilege is checked before the run:
 * target.c).
 */
static Node *
row_tid_for_statement(ParseState *pstate, BackfillTarget *target, int location)
{
	int			levels_up;
	ParseState *table_level = table_parse_state(pstate, target, &levels_up);
	Var		   *var = makeVar(1, SelfItemPointerAttributeNumber, TIDOID, -1,
							  InvalidOid, 0);

	var->location = location;
	markVarForSelectPriv(table_level, var);
	var->varlevelsup = levels_up;
	return (Node *) var;
}

static Node *
expression_paramref_hook(ParseState *pstate, ParamRef *pref)
{
	ExpressionStatement *statement = (ExpressionStatement *) pstate->p_ref_hook_state;
	int			n = pref->number;
	Param	   *param;

	if (n == SQL_EXPRESSION_PARAM)
		return tree_for_statement(pstate, statement->target, statement->target->written.tree);
	if (n >= SQL_SET_PARAM_BASE && n < SQL_SET_PARAM_BASE + statement->target->change.nset)
		return tree_for_statement(pstate, statement->target,
								  statement->target->change.set[n - SQL_SET_PARAM_BASE].tree);
	if (n == SQL_WHERE_PARAM && statement->target->change.where_tree != NULL)
		return tree_for_statement(pstate, statement->target, statement->target->change.where_tree);
	if (n == SQL_ROW_TID_PARAM)
		return row_tid_for_statement(pstate, statement->target, pref->location);
	if (n < 1 || n > statement->nargs)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_PARAMETER),
				 errmsg("there is no parameter $%d", n),
				 parser_errposition(pstate, pref->location)));
	param = makeNode(Param);
	param->paramkind = PARAM_EXTERN;
	param->paramid = n;
	param->paramtype = statement->argtypes[n - 1];
	param->paramtypmod = -1;
	param->paramcollid = get_typcollation(param->paramtype);
	param->location = pref->location;
	return (Node *) param;
}

static void
expression_parser_setup(ParseState *pstate, void *arg)
{
	pstate->p_paramref_hook = expression_paramref_hook;
	pstate->p_ref_hook_state = arg;
}

/*
 * Prepare one of the statements of the run.  With an expression, its
 * placeholder becomes the analysed tree, now and whenever the plan cache
 * analyses the statement again; its $1..$n are of the given types.  Run it
 * with execute_statement.
 */
SPIPlanPtr
prepare_statement(BackfillTarget *target, const char *sql, int nargs, Oid *argtypes,
				  int cursor_options)
{
	SPIPlanPtr	plan;

	if (target->written.tree == NULL && target->change.kind == CHANGE_FILL)
		plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);
	else
	{
		/* with the target, which outlives every plan of the call */
		MemoryContext cxt = GetMemoryChunkContext(target);
		ExpressionStatement *statement = MemoryContextAlloc(cxt, sizeof(ExpressionStatement));
		SPIPrepareOptions options;

		statement->target = target;
		statement->nargs = nargs;
		statement->argtypes = MemoryContextAlloc(cxt, sizeof(Oid) * Max(nargs, 1));
		if (nargs > 0)
			memcpy(statement->argtypes, argtypes, sizeof(Oid) * nargs);
		memset(&options, 0, sizeof(options));
		options.parserSetup = expression_parser_setup;
		options.parserSetupArg = statement;
		options.parseMode = RAW_PARSE_DEFAULT;
		options.cursorOptions = cursor_options;
		plan = SPI_prepare_extended(sql, &options);
	}
	if (plan == NULL)
		elog(ERROR, "safe_backfill: could not prepare \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	return plan;
}

/* The statement's parameters, of the types it was prepared with. */
static ParamListInfo
statement_params(ExpressionStatement *statement, Datum *args, const char *nulls)
{
	ParamListInfo params;
	int			i;

	/* none, as SPI passes none: Citus's executor reads a list it is given */
	if (statement->nargs == 0)
		return NULL;
	params = makeParamList(statement->nargs);
	for (i = 0; i < statement->nargs; i++)
	{
		ParamExternData *prm = &params->params[i];

		prm->value = args[i];
		prm->isnull = nulls != NULL && nulls[i] == 'n';
		prm->pflags = PARAM_FLAG_CONST;
		prm->ptype = statement->argtypes[i];
	}
	return params;
}

/* SPI_execute_plan, for a plan of prepare_statement. */
int
execute_statement(SPIPlanPtr plan, Datum *args, const char *nulls, bool read_only,
				  long count)
{
	CachedPlanSource *source = linitial(SPI_plan_get_plan_sources(plan));
	SPIExecuteOptions options;

	if (source->parserSetup != expression_parser_setup)
		return SPI_execute_plan(plan, args, nulls, read_only, count);
	memset(&options, 0, sizeof(options));
	options.params = statement_params((ExpressionStatement *) source->parserSetupArg,
									  args, nulls);
	options.read_only = read_only;
	options.tcount = count;
	return SPI_execute_plan_extended(plan, &options);
}

/*
 * The final count of an expression run, with a fresh snapshot: the NULLs
 * left that the expression gives a value for (the run is done when there is
 * none), and in target->run.expression_nulls those it gives NULL for, which stay
 * NULL.  One statement, so both numbers come from the same snapshot.
 */
int64
count_computable_nulls(BackfillTarget *target)
{
	int64		counts[2];

	run_tree_counts(target, sql_count_computed_nulls(target), "the NULLs left", counts, 2);
	target->run.expression_nulls = counts[1] - counts[0];
	return counts[0];
}

/*
 * A statement of counts with the run's trees in its places (an expression,
 * safe_update's set list or predicate), run with a snapshot of its own:
 * its one row's ncounts bigint columns in counts.
 */
void
run_tree_counts(BackfillTarget *target, const char *sql, const char *what,
				int64 *counts, int ncounts)
{
	SPIPlanPtr	plan = prepare_statement(target, sql, 0, NULL, 0);
	/* not read-only: SPI then takes a new snapshot for the statement */
	int			rc = execute_statement(plan, NULL, NULL, false, 0);
	bool		isnull;
	int			i;

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "%s: counting %s failed: %s", target->change.procname, what,
			 SPI_result_code_string(rc));
	for (i = 0; i < ncounts; i++)
		counts[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, i + 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	SPI_freeplan(plan);
}

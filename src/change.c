/*
 * change.c
 *		safe_update's set list and safe_update's or safe_delete's predicate:
 *		parsed and analysed against the table once, before any row changes.
 *
 * The texts are the caller's SQL, and no statement ever contains them.  The
 * set list is parsed as what follows SET in an UPDATE, and refused unless
 * that UPDATE is exactly "SET col = expression, ..." and nothing more (no
 * FROM, WHERE, RETURNING, WITH, second statement, (a, b) = (...), a[1] =,
 * DEFAULT).  Each expression is analysed against the table, as an UPDATE's
 * SET would be, and coerced to its column's type by assignment; the
 * predicate is parsed as exactly one expression (expression.c) and analysed
 * as an UPDATE's WHERE clause, and must be boolean.  The trees so analysed
 * are what the statements run, in the places sqlgen.c leaves for them
 * (expression.c puts them there).  Finally a probe, SELECT ctid, <set
 * trees> FROM the table WHERE <predicate> LIMIT 0, is planned and started
 * as the caller: privileges on everything they read, constant errors.
 *
 * safe_update needs a primary key, and may not set one of its columns: the
 * walk by key is what makes each row changed once, because a row's key does
 * not change when it is updated, while its place in the heap does (a walk
 * by block ranges could meet an updated row again further on).
 */
#include "safe_backfill.h"
#include "src/change.h"
#include "src/expression.h"
#include "src/sqlgen.h"

#include "access/table.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

/* what the set list is parsed after, so that it parses as an UPDATE's */
#define SET_LIST_PREFIX "UPDATE safe_backfill_table SET "

static void
refuse_set_shape(ParseState *pstate, int location, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("set must be a list of column = expression"),
			 errdetail("It has %s. Nothing was changed.", what),
			 errhint("%s", hint ? hint : "Pass what would follow SET in an UPDATE, such as status = 'done', price_cents = (price * 100)::int."),
			 parser_errposition(pstate, location)));
}

/* The UPDATE the set list parses as, refused unless it is nothing but its SET. */
static UpdateStmt *
parse_set_list(ParseState *pstate, const char *text)
{
	List	   *raw;
	UpdateStmt *update;

	if (text[strspn(text, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("set must not be empty"),
				 errdetail("Nothing was changed."),
				 errhint("Pass what would follow SET in an UPDATE, such as status = 'done'.")));
	raw = raw_parser(pstate->p_sourcetext, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, UpdateStmt))
		refuse_set_shape(pstate, -1, "more than one statement", NULL);
	update = (UpdateStmt *) linitial_node(RawStmt, raw)->stmt;
	if (update->whereClause)
		refuse_set_shape(pstate, exprLocation(update->whereClause), "a WHERE clause",
						 "Pass the condition as \"where\" => '...'.");
	if (update->fromClause != NIL)
		refuse_set_shape(pstate, exprLocation(linitial(update->fromClause)), "a FROM clause",
						 "Read other tables in a scalar subquery: col = (SELECT p.x FROM parents p WHERE p.id = parent_id).");
	if (COMPAT_UPDATE_RETURNING(update) != NIL)
		refuse_set_shape(pstate, exprLocation(linitial(COMPAT_UPDATE_RETURNING(update))),
						 "a RETURNING clause", NULL);
	if (update->withClause)
		refuse_set_shape(pstate, -1, "a WITH clause", NULL);
	return update;
}

/* One "name = expression" of the list, as parsed: refuse what is not that. */
static void
require_plain_assignment(ParseState *pstate, ResTarget *res)
{
	if (res->indirection != NIL)
		refuse_set_shape(pstate, res->location,
						 psprintf("an assignment to an element or a field of column \"%s\"", res->name),
						 "Assign the whole column, such as tags = array_append(tags, 'x').");
	if (IsA(res->val, MultiAssignRef))
		refuse_set_shape(pstate, res->location, "a multiple-column assignment (a, b) = (...)",
						 "Assign each column on its own: a = ..., b = ....");
	if (IsA(res->val, SetToDefault))
		refuse_set_shape(pstate, res->location,
						 psprintf("DEFAULT for column \"%s\"", res->name),
						 "Write the default's expression itself.");
}

/* The column a set item names, which an UPDATE of ours may assign. */
static Form_pg_attribute
settable_column(ParseState *pstate, BackfillTarget *target, Relation rel, ResTarget *res)
{
	AttrNumber	attnum = attnameAttNum(rel, res->name, true);
	Form_pg_attribute att;
	int			i;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist", res->name,
						target->relname),
				 errdetail("Nothing was changed."),
				 parser_errposition(pstate, res->location)));
	if (attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot assign to system column \"%s\"", res->name),
				 errdetail("Nothing was changed."),
				 parser_errposition(pstate, res->location)));
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	if (att->attgenerated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot assign to generated column \"%s\"", res->name),
				 errdetail("It is computed from other columns. Nothing was changed."),
				 errhint("Set the columns it is computed from instead."),
				 parser_errposition(pstate, res->location)));
	if (att->attidentity != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot assign to identity column \"%s\"", res->name),
				 errdetail("Its values come from its sequence. Nothing was changed."),
				 parser_errposition(pstate, res->location)));
	for (i = 0; i < target->nkeys; i++)
		if (target->keys[i].attnum == attnum)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("safe_update cannot set primary key column \"%s\"", res->name),
					 errdetail("safe_update walks the table by its primary key, so that each row is changed once; a row whose key changes could be met again further on. Nothing was changed."),
					 errhint("Change key values with a plain UPDATE, in batches you choose."),
					 parser_errposition(pstate, res->location)));
	for (i = 0; i < target->change.nset; i++)
		if (target->change.set[i].attnum == attnum)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("multiple assignments to same column \"%s\"", res->name),
					 errdetail("Nothing was changed."),
					 parser_errposition(pstate, res->location)));
	return att;
}

/* The item's expression, analysed against the table and coerced to the column. */
static Node *
analyse_set_expression(ParseState *pstate, Form_pg_attribute att, ResTarget *res)
{
	Node	   *expr = transformExpr(pstate, res->val, EXPR_KIND_SELECT_TARGET);
	Oid			type = exprType(expr);
	Node	   *coerced;

	refuse_other_rows(pstate, expr, "set");
	coerced = coerce_to_target_type(pstate, expr, type, att->atttypid, att->atttypmod,
									COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST,
									exprLocation(expr));
	if (coerced == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" is of type %s but expression is of type %s",
						NameStr(att->attname), format_type_be(att->atttypid),
						format_type_be(type)),
				 errdetail("Nothing was changed."),
				 errhint("Cast the expression: (...)::%s.",
						 format_type_with_typemod(att->atttypid, att->atttypmod)),
				 parser_errposition(pstate, exprLocation(expr))));
	assign_expr_collations(pstate, coerced);
	return coerced;
}

/* A parse state whose only relation is the table, under its own name. */
static ParseState *
table_parse_state_for(Relation rel, const char *sourcetext)
{
	ParseState *pstate = make_parsestate(NULL);
	ParseNamespaceItem *nsitem;

	pstate->p_sourcetext = sourcetext;
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL,
										   false, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	return pstate;
}

static void
analyse_set_list(BackfillTarget *target, Relation rel, const char *text)
{
	ArgumentErrorContext ctx;
	ParseState *pstate = table_parse_state_for(rel, psprintf("%s%s", SET_LIST_PREFIX, text));
	UpdateStmt *update;
	ListCell   *lc;

	push_argument_context(&ctx, target, "set", text, strlen(SET_LIST_PREFIX));
	update = parse_set_list(pstate, text);
	target->change.set = palloc0(sizeof(SetColumn) * list_length(update->targetList));
	foreach(lc, update->targetList)
	{
		ResTarget  *res = lfirst_node(ResTarget, lc);
		Form_pg_attribute att;
		SetColumn  *col;

		require_plain_assignment(pstate, res);
		att = settable_column(pstate, target, rel, res);
		col = &target->change.set[target->change.nset];
		col->tree = analyse_set_expression(pstate, att, res);
		col->attnum = att->attnum;
		col->name = pstrdup(NameStr(att->attname));
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		target->change.nset++;
	}
	pop_argument_context(&ctx);
	free_parsestate(pstate);
}

/* The predicate: one boolean expression over the row, as an UPDATE's WHERE. */
static void
analyse_predicate(BackfillTarget *target, Relation rel, const char *text)
{
	ArgumentErrorContext ctx;
	ParseState *pstate = table_parse_state_for(rel, text);
	Node	   *expr;

	push_argument_context(&ctx, target, "where", text, 0);
	expr = parse_one_expression(pstate, text, "where");
	expr = transformExpr(pstate, expr, EXPR_KIND_WHERE);
	expr = coerce_to_boolean(pstate, expr, "WHERE");
	assign_expr_collations(pstate, expr);
	target->change.where_tree = expr;
	pop_argument_context(&ctx);
	free_parsestate(pstate);
}

/* What the walk needs: a primary key for safe_update, and not a Citus table. */
static void
require_walkable_table(BackfillTarget *target)
{
	if (target->citus_table)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s does not support Citus tables yet", target->change.procname),
				 errdetail("Table %s is a Citus table. Nothing was changed.", target->display),
				 errhint("Run the UPDATE or DELETE through Citus in batches of your own, or call safe_backfill to fill a column.")));
	if (target->change.kind == CHANGE_UPDATE && target->nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("safe_update needs a primary key on table %s", target->display),
				 errdetail("safe_update walks the table by its primary key, so that each row is changed once; walking by block ranges could meet an updated row again where its new version went. Nothing was changed."),
				 errhint("Add a primary key (CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE ... ADD PRIMARY KEY USING INDEX), or use safe_backfill to fill a new column.")));
}

/* The kind and the procedure that asks for it, as messages name it. */
static void
set_change_kind(RowChange *change, ChangeKind kind)
{
	change->kind = kind;
	change->procname = kind == CHANGE_UPDATE ? "safe_update" : "safe_delete";
}

/* A relation a tree of the change reads that is temporary (workers cannot read it), if any. */
static Oid
change_temp_relation(BackfillTarget *target)
{
	Oid			relid = InvalidOid;
	int			i;

	for (i = 0; i < target->change.nset && !OidIsValid(relid); i++)
		relid = temp_relation_read(target->change.set[i].tree);
	if (!OidIsValid(relid) && target->change.where_tree)
		relid = temp_relation_read(target->change.where_tree);
	return relid;
}

/*
 * Check safe_update's set list (set_text; NULL for safe_delete) and the
 * predicate (where_text; NULL: every row) against the table before any row
 * changes, and keep their texts and analysed trees for the statements.
 */
void
prepare_row_change(BackfillTarget *target, ChangeKind kind, const char *set_text,
				   const char *where_text, bool dry_run)
{
	Relation	rel = table_open(target->relid, AccessShareLock);

	set_change_kind(&target->change, kind);
	target->change.dry_run = dry_run;
	require_walkable_table(target);
	if (set_text)
	{
		target->change.set_text = pstrdup(set_text);
		analyse_set_list(target, rel, set_text);
	}
	if (where_text)
	{
		target->change.where_text = pstrdup(where_text);
		analyse_predicate(target, rel, where_text);
	}
	/* a temporary table it reads keeps the run in this session (parallel.c) */
	target->written.temp_relid = change_temp_relation(target);
	table_close(rel, NoLock);
}

/*
 * For parallel workers (parallel.c): the change as the caller's session
 * analysed and checked it, as one string of nodes: kind, dry run, the two
 * texts (or NULL), the predicate's tree (or NULL), then each set column's
 * number and tree.  Workers run these trees, not the texts analysed again,
 * which could find other functions, created meanwhile, under the same
 * names.
 */
char *
serialize_row_change(BackfillTarget *target)
{
	RowChange  *change = &target->change;
	List	   *list = list_make4(makeInteger(change->kind), makeInteger(change->dry_run),
								  change->set_text ? makeString(change->set_text) : NULL,
								  change->where_text ? makeString(change->where_text) : NULL);
	int			i;

	list = lappend(list, change->where_tree);
	for (i = 0; i < change->nset; i++)
		list = lappend(lappend(list, makeInteger(change->set[i].attnum)), change->set[i].tree);
	return nodeToString(list);
}

/* In a parallel worker: the change serialize_row_change shipped. */
void
restore_row_change(BackfillTarget *target, const char *serialized)
{
	List	   *list = (List *) stringToNode(serialized);
	RowChange  *change = &target->change;
	Oid			collation;
	int			i;

	set_change_kind(change, (ChangeKind) intVal(list_nth(list, 0)));
	change->dry_run = intVal(list_nth(list, 1)) != 0;
	change->set_text = list_nth(list, 2) ? strVal(list_nth(list, 2)) : NULL;
	change->where_text = list_nth(list, 3) ? strVal(list_nth(list, 3)) : NULL;
	change->where_tree = list_nth(list, 4);
	change->nset = (list_length(list) - 5) / 2;
	change->set = palloc0(sizeof(SetColumn) * Max(1, change->nset));
	for (i = 0; i < change->nset; i++)
	{
		SetColumn  *col = &change->set[i];

		col->attnum = intVal(list_nth(list, 5 + 2 * i));
		col->tree = list_nth(list, 6 + 2 * i);
		col->name = get_attname(target->relid, col->attnum, false);
		get_atttypetypmodcoll(target->relid, col->attnum, &col->typid, &col->typmod,
							  &collation);
	}
}

/*
 * After the privilege checks, plan and start the probe as the caller:
 * privileges on every table and column the set list and the predicate
 * read, errors the planner finds folding constants.  No row is read.
 */
void
probe_row_change(BackfillTarget *target)
{
	ArgumentErrorContext ctx;
	SPIPlanPtr	plan;
	int			rc;

	push_argument_context(&ctx, target, target->change.where_text ? "where" : "set",
						  target->change.where_text ? target->change.where_text :
						  target->change.set_text, INT_MAX);
	plan = prepare_statement(target, sql_change_probe(target), 0, NULL, 0);
	rc = execute_statement(plan, NULL, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "%s: checking the set list and the predicate failed: %s",
			 target->change.procname, SPI_result_code_string(rc));
	SPI_freeplan(plan);
	pop_argument_context(&ctx);
}

/*
 * sqlgen.c
 *		Every statement safe_backfill runs is built here.
 *
 * Identifiers go through quote_identifier, values are always $n parameters,
 * and operators are schema-qualified, so neither an argument nor the
 * caller's search_path can change what a statement means.
 */
#include "safe_backfill.h"
#include "src/sqlgen.h"

#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

static const char *
relation_clause(BackfillTarget *target)
{
	return psprintf("%s%s", target->only ? "ONLY " : "", target->qualified);
}

/* "k1, k2" */
char *
sql_key_list(BackfillTarget *target)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < target->nkeys; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 quote_identifier(target->keys[i].name));
	return buf.data;
}

/* "($3, $4)" for a key starting at parameter 3 */
static char *
key_params(BackfillTarget *target, int first_param)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (i = 0; i < target->nkeys; i++)
		appendStringInfo(&buf, "%s$%d", i > 0 ? ", " : "", first_param + i);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The key compared to parameters first_param.. column by column, for a key
 * whose operators live in different schemas (a row comparison names one
 * schema for all): lexicographically, each column with its own operators.
 * "(k1 > $1 OR (k1 = $1 AND k2 > $2))"; for "<=" the last column is "<=" and
 * the others "<"; for "=" every column "=".
 */
static char *
key_comparison_by_column(BackfillTarget *target, const char *op, int first_param)
{
	StringInfoData buf;
	bool		equal = strcmp(op, "=") == 0;
	bool		greater = strcmp(op, ">") == 0;
	int			i,
				j;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (i = 0; i < target->nkeys; i++)
	{
		KeyColumn  *key = &target->keys[i];
		const char *last_op;

		if (equal)
		{
			appendStringInfo(&buf, "%s%s %s $%d", i > 0 ? " AND " : "",
							 quote_identifier(key->name), key->op_eq, first_param + i);
			continue;
		}
		if (greater)
			last_op = key->op_gt;
		else
			last_op = (i == target->nkeys - 1) ? key->op_le : key->op_lt;
		appendStringInfoString(&buf, i > 0 ? " OR (" : "(");
		for (j = 0; j < i; j++)
			appendStringInfo(&buf, "%s %s $%d AND ", quote_identifier(target->keys[j].name),
							 target->keys[j].op_eq, first_param + j);
		appendStringInfo(&buf, "%s %s $%d)", quote_identifier(key->name), last_op,
						 first_param + i);
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * Whether OPERATOR(schema.op) names, for every key column, the very operator
 * of its opfamily: one schema for all, and the usual name.
 */
static bool
row_comparison_fits(BackfillTarget *target, const char *op)
{
	char	   *wanted;
	int			i;

	if (target->key_op_schema == NULL)
		return false;
	wanted = psprintf("OPERATOR(%s.%s)", target->key_op_schema, op);
	for (i = 0; i < target->nkeys; i++)
	{
		KeyColumn  *key = &target->keys[i];
		const char *actual = op[0] == '>' ? key->op_gt : op[0] == '=' ? key->op_eq : key->op_le;

		if (strcmp(actual, wanted) != 0)
			return false;
	}
	return true;
}

/*
 * "(k1, k2) OPERATOR(pg_catalog.>) ($2, $3)": a row comparison btree can use.
 * op is ">", "<=" or "=".
 */
static char *
key_comparison(BackfillTarget *target, const char *op, int first_param)
{
	if (!row_comparison_fits(target, op))
		return key_comparison_by_column(target, op, first_param);
	return psprintf("(%s) OPERATOR(%s.%s) %s", sql_key_list(target),
					target->key_op_schema, op, key_params(target, first_param));
}

/*
 * A partitioned table's batch bounded by its first key column too, as the
 * key range implies: " AND k1 >= ALL (ARRAY[$l]) AND k1 <= ALL (ARRAY[$u])"
 * (lower_param 0: no lower bound).  When the key starts with the partition
 * key (a month's payments by (payment_date, payment_id)), PostgreSQL then
 * leaves out the leaves the batch has no rows in, also in a generic plan
 * (when the executor starts), which it cannot do from a row comparison.
 * Written as "ALL (ARRAY[...])", which no index can use, it does not become
 * the access path of a round, whose tids stay that.  Empty for other tables.
 */
static char *
partition_key_bounds(BackfillTarget *target, int lower_param, int upper_param)
{
	KeyColumn  *k1 = &target->keys[0];
	StringInfoData buf;

	initStringInfo(&buf);
	if (target->relkind != RELKIND_PARTITIONED_TABLE)
		return buf.data;
	if (lower_param > 0)
		appendStringInfo(&buf, " AND %s %s ALL (ARRAY[$%d])",
						 quote_identifier(k1->name), k1->op_ge, lower_param);
	appendStringInfo(&buf, " AND %s %s ALL (ARRAY[$%d])",
					 quote_identifier(k1->name), k1->op_le, upper_param);
	return buf.data;
}

/*
 * The key that ends a batch: the batch_size-th key after the lower bound.
 * $1..$n is the lower bound (if any), the last parameter the offset.
 */
char *
sql_key_bound(BackfillTarget *target, bool has_lower)
{
	StringInfoData buf;
	char	   *keys = sql_key_list(target);

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s FROM %s", keys, relation_clause(target));
	if (has_lower)
		appendStringInfo(&buf, " WHERE %s", key_comparison(target, ">", 1));
	appendStringInfo(&buf, " ORDER BY %s LIMIT 1 OFFSET $%d", keys,
					 has_lower ? target->nkeys + 1 : 1);
	return buf.data;
}

/*
 * The keys of a sample of the table's blocks, in key order: $1 is the
 * percentage of blocks read (TABLESAMPLE SYSTEM), for cutting the key space
 * of a parallel run into ranges of about as many rows.
 */
char *
sql_key_sample(BackfillTarget *target)
{
	char	   *keys = sql_key_list(target);

	return psprintf("SELECT %s FROM %s TABLESAMPLE pg_catalog.system ($1) ORDER BY %s",
					keys, relation_clause(target), keys);
}

/*
 * The ctids of the first and the last row of a keyset batch, read before it
 * is updated: the block range its old row versions will leave dead.
 * $1..$n is the lower bound (if any), then the upper bound.
 */
char *
sql_key_range_ctids(BackfillTarget *target, bool has_lower)
{
	char	   *keys = sql_key_list(target);
	const char *rel = relation_clause(target);
	int			upper_param = has_lower ? target->nkeys + 1 : 1;

	return psprintf("SELECT (SELECT ctid FROM %s%s%s ORDER BY %s LIMIT 1),"
					" (SELECT ctid FROM %s WHERE %s)",
					rel, has_lower ? " WHERE " : "",
					has_lower ? key_comparison(target, ">", 1) : "", keys,
					rel, key_comparison(target, "=", upper_param));
}

/*
 * A partitioned table's batch: in each leaf that holds rows of the key
 * range, the first and the last of their tids.  $1..$n the lower bound
 * (exclusive, if any), then the upper bound (inclusive).
 */
char *
sql_key_range_leaf_ctids(BackfillTarget *target, bool has_lower)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT tableoid, pg_catalog.min(ctid), pg_catalog.max(ctid) FROM %s WHERE ",
					 relation_clause(target));
	if (has_lower)
		appendStringInfo(&buf, "%s AND ", key_comparison(target, ">", 1));
	appendStringInfo(&buf, "%s%s GROUP BY tableoid",
					 key_comparison(target, "<=", has_lower ? target->nkeys + 1 : 1),
					 partition_key_bounds(target, has_lower ? 1 : 0,
										  has_lower ? target->nkeys + 1 : 1));
	return buf.data;
}

/*
 * What makes a row of a batch's range one to change: still NULL, for a
 * fill; matching the predicate, for safe_update and safe_delete (every row
 * when safe_update has none).  The predicate is a place for its analysed
 * tree (expression.c), never the caller's text.
 */
static char *
row_predicate(BackfillTarget *target)
{
	if (target->change.kind == CHANGE_FILL)
		return psprintf("%s IS NULL", quote_identifier(target->colname));
	if (target->change.where_tree == NULL)
		return pstrdup("true");
	return psprintf("($%d)", SQL_WHERE_PARAM);
}

/* "c1 = $60000, c2 = $60001": safe_update's set list, each a place for its tree */
static char *
set_list(BackfillTarget *target)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < target->change.nset; i++)
		appendStringInfo(&buf, "%s%s = $%d", i > 0 ? ", " : "",
						 quote_identifier(target->change.set[i].name),
						 SQL_SET_PARAM_BASE + i);
	return buf.data;
}

/*
 * The head of every statement that changes a batch's rows, to which the
 * range's bounds are appended with AND: fill the NULLs with the value ($1),
 * set the set list's columns, or delete; a dry run selects the rows it
 * would change.  $1 is declared by every one of them, and only a fill's
 * value uses it.
 */
static void
append_update_head(StringInfo buf, BackfillTarget *target)
{
	const char *rel = relation_clause(target);
	char	   *rows = row_predicate(target);

	if (target->change.dry_run)
		appendStringInfo(buf, "SELECT FROM %s WHERE %s", rel, rows);
	else if (target->change.kind == CHANGE_UPDATE)
		appendStringInfo(buf, "UPDATE %s SET %s WHERE %s", rel, set_list(target), rows);
	else if (target->change.kind == CHANGE_DELETE)
		appendStringInfo(buf, "DELETE FROM %s WHERE %s", rel, rows);
	else
		appendStringInfo(buf, "UPDATE %s SET %s = $1 WHERE %s",
						 rel, quote_identifier(target->colname), rows);
}

/* ---------------------------------------------------------------------
 * expression => '...'
 *
 * No statement contains the caller's text: each has SQL_EXPRESSION_PLACE
 * where the expression goes, in a query whose first and only relation is
 * the table, and expression.c's prepare_statement puts the analysed tree
 * there.
 * --------------------------------------------------------------------- */

/*
 * A name for the subquery of sql_compute_range (as_table: not the table's
 * own name, which its UPDATE already uses) or one of its columns (not a
 * column of the table, or the UPDATE's unqualified references to the
 * table's columns would be ambiguous): base, or base_1, base_2, ...
 */
static const char *
unused_name(BackfillTarget *target, const char *base, bool as_table)
{
	char	   *name = pstrdup(base);
	int			n = 0;

	while (as_table ? strcmp(name, target->relname) == 0 :
		   get_attnum(target->relid, name) != InvalidAttrNumber)
		name = psprintf("%s_%d", base, ++n);
	return name;
}

/*
 * The rows of one range to fill and the value computed for each:
 *   UPDATE t SET c = new.value
 *   FROM LATERAL (SELECT <t.ctid> AS tid, (<expression>) AS value OFFSET 0) new
 *   WHERE new.value IS NOT NULL AND (ctid = new.tid) IS TRUE
 *     AND c IS NULL AND <range>
 * The UPDATE reads each row of the range once; the subquery computes the
 * expression from that row version, once (OFFSET 0 keeps it from being
 * merged into the UPDATE, which would compute it in the SET list and again
 * in the WHERE clause), and rows it gives NULL for are not written: they stay
 * NULL without a new row version, and the final count tells them apart
 * (sql_count_computed_nulls).
 *
 * A subquery in an UPDATE's FROM may not refer to the table being updated,
 * in SQL: the subquery's row is not computed again when the UPDATE follows a
 * row updated concurrently to its new version (EvalPlanQual rechecks the
 * WHERE clause on the new version with the subquery's row as first
 * computed).  The text therefore names neither the table nor its columns
 * there: the parser hook (expression.c) puts the analysed tree and the row's
 * ctid (SQL_ROW_TID_PLACE) in its places, and the ctid is the guard: a row
 * another transaction updates meanwhile has a new ctid when the UPDATE
 * reaches it, so "(ctid = new.tid) IS TRUE" fails on its new version and it
 * is skipped, not filled with a value computed from its old version; it is
 * still NULL and a later pass computes it again.  ("IS TRUE": a TID Scan may
 * not recheck a plain ctid comparison on the new version.)
 *
 * This replaced a subquery that read the range a second time, joined back
 * to the UPDATE's rows by ctid: every row was fetched twice, and the join's
 * TID Scan, started again for each row, looked up the table's size each
 * time.
 */
static char *
sql_compute_rows_lateral(BackfillTarget *target, const char *rows)
{
	const char *rel = relation_clause(target);
	const char *col = quote_identifier(target->colname);
	const char *sub = unused_name(target, "safe_backfill_new", true);
	const char *tid = unused_name(target, "safe_backfill_tid", false);
	const char *value = unused_name(target, "safe_backfill_value", false);

	return psprintf("UPDATE %s SET %s = %s.%s"
					" FROM LATERAL (SELECT %s AS %s, %s AS %s OFFSET 0) %s"
					" WHERE %s.%s IS NOT NULL"
					" AND (ctid OPERATOR(pg_catalog.=) %s.%s) IS TRUE"
					" AND %s IS NULL%s",
					rel, col, sub, value,
					SQL_ROW_TID_PLACE, tid, SQL_EXPRESSION_PLACE, value, sub,
					sub, value,
					sub, tid,
					col, rows);
}

/*
 * On a Citus table (a Citus local table: expressions are refused on
 * distributed and reference tables), Citus plans the statement by deparsing
 * it back to SQL, where a LATERAL subquery over the updated row is not valid:
 * there the value is computed by a subquery that reads the range (rows) a
 * second time, joined back to the UPDATE's rows by ctid, which also checks
 * check on each row:
 *   UPDATE t SET c = new.value
 *   FROM (SELECT tableoid, ctid, (<expression>) AS value FROM t
 *         WHERE c IS NULL AND <rows> OFFSET 0) new
 *   WHERE tableoid = new.tableoid AND ctid = new.ctid
 *     AND (ctid = new.ctid) IS TRUE AND new.value IS NOT NULL AND c IS NULL <check>
 */
static char *
sql_compute_rows_joined(BackfillTarget *target, const char *rows, const char *check)
{
	const char *rel = relation_clause(target);
	const char *col = quote_identifier(target->colname);
	const char *sub = unused_name(target, "safe_backfill_new", true);
	const char *tid_rel = unused_name(target, "safe_backfill_rel", false);
	const char *tid = unused_name(target, "safe_backfill_tid", false);
	const char *value = unused_name(target, "safe_backfill_value", false);

	return psprintf("UPDATE %s SET %s = %s.%s"
					" FROM (SELECT tableoid AS %s, ctid AS %s,"
					" %s AS %s FROM %s WHERE %s IS NULL%s OFFSET 0) %s"
					" WHERE tableoid OPERATOR(pg_catalog.=) %s.%s"
					" AND ctid OPERATOR(pg_catalog.=) %s.%s"
					" AND (ctid OPERATOR(pg_catalog.=) %s.%s) IS TRUE"
					" AND %s.%s IS NOT NULL AND %s IS NULL%s",
					rel, col, sub, value,
					tid_rel, tid, SQL_EXPRESSION_PLACE, value, rel, col, rows, sub,
					sub, tid_rel, sub, tid, sub, tid, sub, value, col, check);
}

/* rows: what the UPDATE reads; check: its bounds, checked again on each row */
static char *
sql_compute_rows(BackfillTarget *target, const char *rows, const char *check)
{
	if (target->citus_table)
		return sql_compute_rows_joined(target, rows, check);
	return sql_compute_rows_lateral(target, rows);
}

static char *
sql_compute_range(BackfillTarget *target, const char *range)
{
	return sql_compute_rows(target, range, range);
}

/*
 * Planned and started (LIMIT 0: no row read) before the first batch, as the
 * caller: privileges on whatever the expression reads and on the row
 * identity the batches read with it, constant errors.
 */
char *
sql_expression_probe(BackfillTarget *target)
{
	return psprintf("SELECT tableoid, ctid, %s FROM %s LIMIT 0",
					SQL_EXPRESSION_PLACE, relation_clause(target));
}

/*
 * The final count of an expression run: the NULLs the expression now gives
 * a value for (they should have been filled), and all NULLs left.
 */
char *
sql_count_computed_nulls(BackfillTarget *target)
{
	const char *col = quote_identifier(target->colname);

	return psprintf("SELECT pg_catalog.count(*) FILTER (WHERE %s IS NOT NULL),"
					" pg_catalog.count(*) FROM %s WHERE %s IS NULL",
					SQL_EXPRESSION_PLACE, relation_clause(target), col);
}

/*
 * For finding the row a failed batch of an expression run failed on: the
 * NULL rows from where the batch started, in key order ($1.. the lower
 * bound, if any, then the LIMIT) or block order ($1 the first tid, $2 the
 * LIMIT): their tableoid, ctid and key.
 */
char *
sql_expression_rows_from(BackfillTarget *target, bool by_ctid, bool has_lower)
{
	const char *col = quote_identifier(target->colname);
	const char *rel = relation_clause(target);

	if (by_ctid || target->nkeys == 0)
		return psprintf("SELECT tableoid, ctid FROM %s WHERE %s IS NULL"
						" AND ctid OPERATOR(pg_catalog.>=) $1 ORDER BY ctid LIMIT $2",
						rel, col);
	return psprintf("SELECT tableoid, ctid, %s FROM %s WHERE %s IS NULL%s%s ORDER BY %s LIMIT $%d",
					sql_key_list(target), rel, col, has_lower ? " AND " : "",
					has_lower ? key_comparison(target, ">", 1) : "",
					sql_key_list(target), has_lower ? target->nkeys + 1 : 1);
}

/* One row of an expression run, alone: $1 its tableoid, $2 its ctid. */
char *
sql_compute_one_row(BackfillTarget *target)
{
	const char *col = quote_identifier(target->colname);

	return psprintf("UPDATE %s SET %s = %s"
					" WHERE %s IS NULL AND tableoid OPERATOR(pg_catalog.=) $1"
					" AND ctid OPERATOR(pg_catalog.=) $2",
					relation_clause(target), col, SQL_EXPRESSION_PLACE, col);
}

/*
 * Fill one key range: $1 is the value, then the lower bound (exclusive) and
 * the upper bound (inclusive), each present or not.  With an expression, $1
 * is passed NULL and not used.
 */
char *
sql_update_key_range(BackfillTarget *target, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	int			next_param = 2;

	if (target->written.expression)
	{
		StringInfoData range;

		initStringInfo(&range);
		if (has_lower)
			appendStringInfo(&range, " AND %s", key_comparison(target, ">", next_param));
		if (has_upper)
			appendStringInfo(&range, " AND %s",
							 key_comparison(target, "<=", has_lower ? next_param + target->nkeys : next_param));
		return sql_compute_range(target, range.data);
	}
	initStringInfo(&buf);
	append_update_head(&buf, target);
	if (has_lower)
	{
		appendStringInfo(&buf, " AND %s", key_comparison(target, ">", next_param));
		next_param += target->nkeys;
	}
	if (has_upper)
		appendStringInfo(&buf, " AND %s", key_comparison(target, "<=", next_param));
	return buf.data;
}

/*
 * Fill one range of heap blocks, read by a TID Range Scan: $1 is the value,
 * $2 the first tid, $3 (if present) the first tid past the range.
 */
char *
sql_update_ctid_range(BackfillTarget *target, bool has_upper)
{
	StringInfoData buf;

	if (target->written.expression)
		return sql_compute_range(target,
								 has_upper ? " AND ctid OPERATOR(pg_catalog.>=) $2 AND ctid OPERATOR(pg_catalog.<) $3" :
								 " AND ctid OPERATOR(pg_catalog.>=) $2");
	initStringInfo(&buf);
	append_update_head(&buf, target);
	appendStringInfoString(&buf, " AND ctid OPERATOR(pg_catalog.>=) $2");
	if (has_upper)
		appendStringInfoString(&buf, " AND ctid OPERATOR(pg_catalog.<) $3");
	return buf.data;
}

/* ---------------------------------------------------------------------
 * HOT rounds (iterate.c): the tids of a batch's rows still NULL, read once,
 * then one UPDATE per round over its share of them.
 * --------------------------------------------------------------------- */

/*
 * The tid of each row and, with_leaf, the OID of its leaf (a partitioned
 * table walked by key learns its leaves' ranges from them).
 */
static void
append_null_tids_head(StringInfo buf, BackfillTarget *target, bool with_leaf)
{
	appendStringInfo(buf, "SELECT ctid%s FROM %s WHERE %s",
					 with_leaf ? ", tableoid" : "",
					 relation_clause(target), row_predicate(target));
}

/* $1..$n the lower bound (exclusive, if any), then the upper bound (inclusive) */
char *
sql_key_range_null_tids(BackfillTarget *target, bool has_lower)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_null_tids_head(&buf, target, target->relkind == RELKIND_PARTITIONED_TABLE);
	if (has_lower)
		appendStringInfo(&buf, " AND %s", key_comparison(target, ">", 1));
	appendStringInfo(&buf, " AND %s%s",
					 key_comparison(target, "<=", has_lower ? target->nkeys + 1 : 1),
					 partition_key_bounds(target, has_lower ? 1 : 0,
										  has_lower ? target->nkeys + 1 : 1));
	return buf.data;
}

/* $1 the first tid of the range, $2 the first tid past it */
char *
sql_ctid_range_null_tids(BackfillTarget *target)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_null_tids_head(&buf, target, false);
	appendStringInfoString(&buf, " AND ctid OPERATOR(pg_catalog.>=) $1"
						   " AND ctid OPERATOR(pg_catalog.<) $2");
	return buf.data;
}

/*
 * One round: $1 is the value, $2 the round's tids (tid[]), then the batch's
 * bounds.  The tids are the access path (a TID Scan reads only the round's
 * rows); the batch's bounds stay as a check on each row, written as
 * "(...) IS TRUE" so the planner cannot pick them as the access path
 * instead and read the whole batch again in every round.  With an
 * expression, the same: the UPDATE reads the round's rows and the
 * expression is computed for each (sql_compute_rows).
 */
static char *
round_statement(BackfillTarget *target, const char *bounds)
{
	const char *tids = " AND ctid OPERATOR(pg_catalog.=) ANY ($2)";
	StringInfoData buf;

	initStringInfo(&buf);
	if (target->written.expression)
	{
		appendStringInfo(&buf, "%s%s", tids, bounds);
		return sql_compute_rows(target, buf.data, bounds);
	}
	append_update_head(&buf, target);
	appendStringInfo(&buf, "%s%s", tids, bounds);

	/*
	 * safe_update: whether each row the round changed still matches the
	 * predicate, as its new version (iterate.c, rows_left_matching)
	 */
	if (target->change.kind == CHANGE_UPDATE && !target->change.dry_run)
		appendStringInfo(&buf, " RETURNING %s", row_predicate(target));
	return buf.data;
}

/* then $3.. the lower bound (exclusive, if any), then the upper bound (inclusive) */
char *
sql_update_key_round(BackfillTarget *target, bool has_lower)
{
	StringInfoData buf;
	int			next_param = 3;

	initStringInfo(&buf);
	appendStringInfoString(&buf, " AND (");
	if (has_lower)
	{
		appendStringInfo(&buf, "%s AND ", key_comparison(target, ">", next_param));
		next_param += target->nkeys;
	}
	appendStringInfo(&buf, "%s) IS TRUE%s", key_comparison(target, "<=", next_param),
					 partition_key_bounds(target, has_lower ? 3 : 0, next_param));
	return round_statement(target, buf.data);
}

/* then $3 the first tid of the batch's blocks, $4 the first tid past them */
char *
sql_update_ctid_round(BackfillTarget *target)
{
	return round_statement(target, " AND (ctid OPERATOR(pg_catalog.>=) $3"
						   " AND ctid OPERATOR(pg_catalog.<) $4) IS TRUE");
}

/*
 * The rows the run's statements reach (ONLY for a plain table, as they use)
 * that its row predicate holds for now: the NULLs a backfill was to fill
 * and did not, or the rows that match safe_update's or safe_delete's
 * predicate after its last batch (changed behind the walk, or still
 * matching after their update).
 */
char *
sql_count_matching_rows(BackfillTarget *target)
{
	return psprintf("SELECT pg_catalog.count(*) FROM %s WHERE %s",
					relation_clause(target), row_predicate(target));
}

/*
 * Planned and started (LIMIT 0: no row read) before the first batch, as the
 * caller: privileges on whatever the set list and the predicate read,
 * constant errors.
 */
char *
sql_change_probe(BackfillTarget *target)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ctid");
	for (i = 0; i < target->change.nset; i++)
		appendStringInfo(&buf, ", $%d", SQL_SET_PARAM_BASE + i);
	appendStringInfo(&buf, " FROM %s WHERE %s LIMIT 0",
					 relation_clause(target), row_predicate(target));
	return buf.data;
}

/* Exact row count of one leaf table, for progress when it was never analyzed. */
char *
sql_count_rows(Oid relid)
{
	return psprintf("SELECT pg_catalog.count(*) FROM ONLY %s", sql_qualified_relation(relid));
}

/* The relation's quoted schema-qualified name, as it is now. */
char *
sql_qualified_relation(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * The NOT NULL promotion.  No ONLY: constraints and NOT NULL recurse to
 * partitions and inheritance children, which is what makes the parent's
 * SET NOT NULL skip their scans too.
 */
char *
sql_count_nulls(BackfillTarget *target)
{
	return psprintf("SELECT pg_catalog.count(*) FROM %s WHERE %s IS NULL",
					target->qualified, quote_identifier(target->colname));
}

char *
sql_add_not_null_check(BackfillTarget *target, const char *conname)
{
	return psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID",
					target->qualified, quote_identifier(conname),
					quote_identifier(target->colname));
}

/* PostgreSQL 18: the column's own NOT NULL constraint, not yet checked. */
char *
sql_add_not_null_not_valid(BackfillTarget *target, const char *conname)
{
	return psprintf("ALTER TABLE %s ADD CONSTRAINT %s NOT NULL %s NOT VALID",
					target->qualified, quote_identifier(conname),
					quote_identifier(target->colname));
}

char *
sql_validate_constraint(BackfillTarget *target, const char *conname)
{
	return psprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s",
					target->qualified, quote_identifier(conname));
}

/* The second argument gives it the shape of a DdlBuilder; it takes no constraint. */
char *
sql_set_not_null(BackfillTarget *target, const char *unused)
{
	return psprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL",
					target->qualified, quote_identifier(target->colname));
}

char *
sql_drop_constraint(BackfillTarget *target, const char *conname)
{
	return psprintf("ALTER TABLE %s DROP CONSTRAINT %s",
					target->qualified, quote_identifier(conname));
}

/* ---------------------------------------------------------------------
 * Queries on system views (run as the caller)
 *
 * Written like the jobs' statements: OPERATOR(pg_catalog.x), pg_catalog.f,
 * pg_catalog types, and no NULLIF or IS DISTINCT FROM, which resolve "="
 * by name.  EXTRACT and COALESCE are syntax.
 * --------------------------------------------------------------------- */

/*
 * Who holds a lock on relation $1 in this database, other than us: "pid n"
 * (or a prepared transaction), its state, seconds its transaction is open.
 */
char *
sql_lock_holders(void)
{
	return pstrdup("SELECT CASE WHEN l.pid IS NULL THEN 'a prepared transaction'::pg_catalog.text"
				   "   ELSE pg_catalog.concat('pid ', l.pid) END,"
				   " CASE WHEN l.pid IS NULL THEN 'prepared'::pg_catalog.text"
				   "   ELSE COALESCE(a.state, 'unknown'::pg_catalog.text) END,"
				   " COALESCE(EXTRACT(epoch FROM pg_catalog.clock_timestamp()"
				   "   OPERATOR(pg_catalog.-) a.xact_start), 0)::pg_catalog.float8"
				   " FROM pg_catalog.pg_locks l"
				   " LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid"
				   " WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'::pg_catalog.text"
				   " AND l.relation OPERATOR(pg_catalog.=) $1 AND l.granted"
				   " AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d"
				   "   WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
				   " AND (l.pid IS NULL OR l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())"
				   " GROUP BY 1, 2, 3 ORDER BY 3 DESC, 1");
}

/*
 * The session whose snapshot or transaction is the oldest of those that
 * hold back the horizon of this database ($2) at the transaction $1: its
 * pid, state (NULL if the caller may not see it), backend type and how long
 * its transaction has been open, in s.  A session of another database
 * counts only if it holds back every database's (datid NULL: a walsender
 * with a standby's feedback).  age() orders xids across wraparound.
 */
char *
sql_horizon_holder(void)
{
	return pstrdup("SELECT a.pid, a.state, a.backend_type,"
				   " EXTRACT(epoch FROM pg_catalog.clock_timestamp()"
				   "   OPERATOR(pg_catalog.-) a.xact_start)::pg_catalog.float8"
				   " FROM pg_catalog.pg_stat_activity a"
				   " WHERE a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
				   " AND (a.datid OPERATOR(pg_catalog.=) $2 OR a.datid IS NULL)"
				   " AND GREATEST(pg_catalog.age(a.backend_xmin), pg_catalog.age(a.backend_xid))"
				   "   OPERATOR(pg_catalog.>=) pg_catalog.age($1)"
				   " ORDER BY GREATEST(pg_catalog.age(a.backend_xmin), pg_catalog.age(a.backend_xid)) DESC"
				   " LIMIT 1");
}

/* Each standby: its name (or "pid n"), replay position, reported replay lag in ms. */
char *
sql_replica_positions(void)
{
	return pstrdup("SELECT CASE WHEN application_name IS NULL"
				   "   OR application_name OPERATOR(pg_catalog.=) ''::pg_catalog.text"
				   "   THEN pg_catalog.concat('pid ', pid) ELSE application_name END,"
				   " replay_lsn,"
				   " COALESCE(EXTRACT(epoch FROM replay_lag) OPERATOR(pg_catalog.*) 1000, 0)::pg_catalog.float8"
				   " FROM pg_catalog.pg_stat_replication"
				   " WHERE replay_lsn IS NOT NULL");
}

/* ---------------------------------------------------------------------
 * The jobs tables (jobs.c runs these as the tables' owner)
 *
 * table is the quoted, schema-qualified name; every operator is written
 * OPERATOR(pg_catalog.x) and every function pg_catalog.f, so the statements
 * mean the same whatever search_path is in effect.  COALESCE and searched
 * CASE are syntax, not functions or operators.
 * --------------------------------------------------------------------- */

/*
 * The latest unfinished run of $1 (table), $2 (column), and $3 (value) or
 * $4 (expression), whichever is not NULL, by role $5: a value run and an
 * expression run never resume each other, nor does one role resume another's
 * run (its error would be recorded in, and shown with, the other's job).
 * $6 is the operation: an update or a delete resumes a run of the same set
 * list ($7) and predicate ($8), as given; a dry run is never resumed.
 */
char *
sql_job_find_resumable(const char *table)
{
	return psprintf("SELECT id, phase, last_key, last_block, rows_done, iteration"
					" FROM %s WHERE relid OPERATOR(pg_catalog.=) $1"
					" AND attnum OPERATOR(pg_catalog.=) $2"
					" AND operation OPERATOR(pg_catalog.=) $6 AND NOT dry_run"
					" AND ((value_text OPERATOR(pg_catalog.=) $3 AND expression IS NULL)"
					" OR (expression OPERATOR(pg_catalog.=) $4 AND value_text IS NULL)"
					" OR (operation OPERATOR(pg_catalog.<>) 'fill'::pg_catalog.text"
					" AND COALESCE(set_list, ''::pg_catalog.text) OPERATOR(pg_catalog.=) COALESCE($7, ''::pg_catalog.text)"
					" AND COALESCE(where_clause, ''::pg_catalog.text) OPERATOR(pg_catalog.=) COALESCE($8, ''::pg_catalog.text)))"
					" AND username OPERATOR(pg_catalog.=) $5"
					" AND state OPERATOR(pg_catalog.<>) 'done'::pg_catalog.text"
					" ORDER BY id DESC LIMIT 1", table);
}

/* $10.. the operation, set list, predicate and dry run of an update or a delete */
char *
sql_job_insert(const char *table)
{
	return psprintf("INSERT INTO %s (relid, attnum, table_name, column_name,"
					" value_text, iteration, rows_estimated, pid, username, expression,"
					" operation, set_list, where_clause, dry_run)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7, pg_catalog.pg_backend_pid(), $8, $9,"
					" $10, $11, $12, $13)"
					" RETURNING id", table);
}

/* A resumed run: $1 the job, $2 the new row estimate, $3 its iteration. */
char *
sql_job_claim(const char *table)
{
	return psprintf("UPDATE %s SET state = 'running', error = NULL,"
					" pid = pg_catalog.pg_backend_pid(), rows_estimated = $2, iteration = $3,"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1", table);
}

/* $1 job, $2 phase, $3 last key (or NULL: unchanged), $4 block, $5 filled, $6 scanned, $7 batches */
char *
sql_job_record_batch(const char *table)
{
	return psprintf("UPDATE %s SET phase = $2,"
					" last_key = COALESCE($3, last_key),"
					" last_block = $4,"
					" rows_done = rows_done OPERATOR(pg_catalog.+) $5,"
					" rows_scanned = rows_scanned OPERATOR(pg_catalog.+) $6,"
					" batches = batches OPERATOR(pg_catalog.+) $7,"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1", table);
}

/*
 * $1 job in its parallel main pass: its counts are what its ranges' batches
 * committed.  Nothing (no row returned) for a job in another phase or without
 * ranges.  GREATEST because a Citus run's shard ranges count no rows: its
 * own count stands.
 */
char *
sql_job_count_ranges(const char *table, const char *ranges)
{
	return psprintf("UPDATE %s j SET rows_done = GREATEST(j.rows_done, s.rows_done),"
					" rows_scanned = GREATEST(j.rows_scanned, s.rows_scanned),"
					" batches = GREATEST(j.batches, s.batches),"
					" updated_at = pg_catalog.clock_timestamp()"
					" FROM (SELECT pg_catalog.sum(r.rows_done)::pg_catalog.int8 AS rows_done,"
					" pg_catalog.sum(r.rows_scanned)::pg_catalog.int8 AS rows_scanned,"
					" pg_catalog.sum(r.batches)::pg_catalog.int8 AS batches"
					" FROM %s r WHERE r.job_id OPERATOR(pg_catalog.=) $1"
					" HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0) s"
					" WHERE j.id OPERATOR(pg_catalog.=) $1"
					" AND j.phase OPERATOR(pg_catalog.=) 'main'::pg_catalog.text"
					" RETURNING j.rows_done", table, ranges);
}

/*
 * $1 job, just split into ranges: the lowest range starts with the counts
 * the job had (a run started over keeps them), so the ranges' sums stay the
 * job's counts.
 */
char *
sql_range_take_job_counts(const char *table, const char *ranges)
{
	return psprintf("UPDATE %s r SET rows_done = j.rows_done, rows_scanned = j.rows_scanned,"
					" batches = j.batches FROM %s j"
					" WHERE j.id OPERATOR(pg_catalog.=) $1 AND r.job_id OPERATOR(pg_catalog.=) $1"
					" AND r.range_no OPERATOR(pg_catalog.=) (SELECT pg_catalog.min(q.range_no)"
					" FROM %s q WHERE q.job_id OPERATOR(pg_catalog.=) $1)",
					ranges, table, ranges);
}

/*
 * The runs that finished more than $1 seconds ago (their ranges go with them,
 * ON DELETE CASCADE); unfinished runs stay, to be resumed.  OPERATOR(x)
 * binds like any other operator, left to right: the parentheses are needed.
 */
char *
sql_job_delete_expired(const char *table)
{
	return psprintf("DELETE FROM %s WHERE state OPERATOR(pg_catalog.<>) 'running'::pg_catalog.text"
					" AND finished_at OPERATOR(pg_catalog.<) (pg_catalog.clock_timestamp()"
					" OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))", table);
}

/*
 * The finished runs of role $1, on table $2 (NULL: any), that finished at
 * least $3 (an interval) ago.
 */
char *
sql_job_forget_finished(const char *table)
{
	return psprintf("DELETE FROM %s WHERE username OPERATOR(pg_catalog.=) $1"
					" AND state OPERATOR(pg_catalog.<>) 'running'::pg_catalog.text"
					" AND ($2 IS NULL OR relid OPERATOR(pg_catalog.=) $2)"
					" AND finished_at OPERATOR(pg_catalog.<=) (pg_catalog.clock_timestamp()"
					" OPERATOR(pg_catalog.-) $3)", table);
}

/*
 * $1 job: forget where it stopped, so the next run starts over.  Its walk
 * starts over too: the rows it scans count afresh (the progress view's
 * percent and eta), while rows_done keeps counting the rows the run changed.
 */
char *
sql_job_forget_position(const char *table)
{
	return psprintf("UPDATE %s SET phase = 'main', last_key = NULL, last_block = NULL, rows_scanned = 0,"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1", table);
}

/* $1 job: its parallel ranges */
char *
sql_range_delete(const char *table)
{
	return psprintf("DELETE FROM %s WHERE job_id OPERATOR(pg_catalog.=) $1", table);
}

/*
 * $1 job, $2 the error that stopped it (NULL: done).  A parallel main pass
 * that failed has its counts taken from its ranges first (job_finish).
 */
char *
sql_job_finish(const char *table)
{
	return psprintf("UPDATE %s SET state = CASE WHEN $2 IS NULL THEN 'done' ELSE 'failed' END,"
					" phase = CASE WHEN $2 IS NULL THEN 'done' ELSE phase END,"
					" error = $2, finished_at = pg_catalog.clock_timestamp(),"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1", table);
}

char *
sql_range_insert(const char *table)
{
	return psprintf("INSERT INTO %s (job_id, range_no, last_key, end_key,"
					" next_block, end_block) VALUES ($1, $2, $3, $4, $5, $6)", table);
}

/* A Citus run's range: $1 job, $2 the shard's ordinal, $3 the shard id. */
char *
sql_range_insert_shard(const char *table)
{
	return psprintf("INSERT INTO %s (job_id, range_no, shard_id) VALUES ($1, $2, $3)", table);
}

char *
sql_range_exists(const char *table)
{
	return psprintf("SELECT 1 FROM %s WHERE job_id OPERATOR(pg_catalog.=) $1 LIMIT 1", table);
}

char *
sql_range_load_unfinished(const char *table)
{
	return psprintf("SELECT range_no, last_key, end_key, next_block, end_block,"
					" COALESCE(shard_id, range_no)"
					" FROM %s WHERE job_id OPERATOR(pg_catalog.=) $1 AND NOT done"
					" ORDER BY range_no", table);
}

/*
 * $1 job, $2 range, $3 last key / $4 next block (NULL: unchanged), $5 filled,
 * $6 done, $7 scanned, $8 batches
 */
char *
sql_range_update(const char *table)
{
	return psprintf("UPDATE %s SET last_key = COALESCE($3, last_key),"
					" next_block = COALESCE($4, next_block),"
					" rows_done = rows_done OPERATOR(pg_catalog.+) $5, done = $6,"
					" rows_scanned = rows_scanned OPERATOR(pg_catalog.+) $7,"
					" batches = batches OPERATOR(pg_catalog.+) $8"
					" WHERE job_id OPERATOR(pg_catalog.=) $1"
					" AND range_no OPERATOR(pg_catalog.=) $2", table);
}

/* ---------------------------------------------------------------------
 * SQL shown in hints
 *
 * A hint's command is meant to be pasted: names are quoted identifiers and
 * names passed as arguments are quoted literals, so a table called
 * x; DROP TABLE y; -- is only ever a name there too.  "..." and <value>
 * mark what the reader fills in.
 * --------------------------------------------------------------------- */

/* ALTER TABLE t ADD COLUMN c ...; */
char *
sql_hint_add_column(BackfillTarget *target, const char *colname)
{
	return psprintf("ALTER TABLE %s ADD COLUMN %s ...;", target->qualified,
					quote_identifier(colname));
}

/* ALTER TABLE t ALTER COLUMN c SET DEFAULT ...; */
char *
sql_hint_set_default(BackfillTarget *target)
{
	return psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT ...;", target->qualified,
					quote_identifier(target->colname));
}

/*
 * CALL safe_backfill('t', 'c', <value>); (tbl is a regclass, col a name),
 * or with expression => '...' for an expression run
 */
char *
sql_hint_backfill_call(BackfillTarget *target)
{
	if (target->written.expression)
		return psprintf("CALL safe_backfill(%s, %s, expression => %s);",
						quote_literal_cstr(target->qualified),
						quote_literal_cstr(target->colname),
						quote_literal_cstr(target->written.expression));
	return psprintf("CALL safe_backfill(%s, %s, <value>);",
					quote_literal_cstr(target->qualified),
					quote_literal_cstr(target->colname));
}

/* CALL safe_set_not_null('t', 'c'[, drop_check => true]); */
char *
sql_hint_set_not_null_call(BackfillTarget *target, bool drop_check)
{
	return psprintf("CALL safe_set_not_null(%s, %s%s);",
					quote_literal_cstr(target->qualified),
					quote_literal_cstr(target->colname),
					drop_check ? ", drop_check => true" : "");
}

/* GRANT SELECT, UPDATE ON t TO role; */
char *
sql_hint_grant_table(BackfillTarget *target, const char *role)
{
	return psprintf("GRANT SELECT, %s ON %s TO %s;",
					target->change.kind == CHANGE_DELETE ? "DELETE" : "UPDATE",
					target->qualified, quote_identifier(role));
}

/* GRANT granted TO role; */
char *
sql_hint_grant_role(const char *granted, const char *role)
{
	return psprintf("GRANT %s TO %s;", quote_identifier(granted), quote_identifier(role));
}

/* SET ROLE role; */
char *
sql_hint_update_extension(void)
{
	return pstrdup("ALTER EXTENSION safe_backfill UPDATE;");
}

char *
sql_hint_set_role(const char *role)
{
	return psprintf("SET ROLE %s;", quote_identifier(role));
}

/* For the hint of a refused DO INSTEAD rule. */
char *
sql_disable_rule(BackfillTarget *target, const char *rulename)
{
	return psprintf("ALTER TABLE %s DISABLE RULE %s",
					target->qualified, quote_identifier(rulename));
}

/* ---------------------------------------------------------------------
 * Citus (citus.c).  Citus keeps its catalog in pg_catalog; every name
 * and operator below is qualified, like the rest of this file.
 * --------------------------------------------------------------------- */

/* partmethod, repmodel, colocationid of the table $1 (an OID), if Citus knows it */
char *
sql_citus_table_kind(void)
{
	return pstrdup("SELECT p.partmethod::pg_catalog.text, p.repmodel::pg_catalog.text,"
				   " p.colocationid::pg_catalog.int8"
				   " FROM pg_catalog.pg_dist_partition p"
				   " WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass");
}

/*
 * Each shard of table $1 (or only shard $2 if not NULL) with its active
 * placement on a primary node: shard id, quoted qualified shard name, host,
 * port.
 */
char *
sql_citus_placements(void)
{
	return pstrdup("SELECT s.shardid, pg_catalog.shard_name(s.logicalrelid, s.shardid, false),"
				   " n.nodename, n.nodeport"
				   " FROM pg_catalog.pg_dist_shard s"
				   " JOIN pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) s.shardid"
				   " JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid"
				   " WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
				   " AND ($2::pg_catalog.int8 IS NULL OR s.shardid OPERATOR(pg_catalog.=) $2::pg_catalog.int8)"
				   " AND p.shardstate OPERATOR(pg_catalog.=) 1"
				   " AND n.noderole OPERATOR(pg_catalog.=) 'primary'::pg_catalog.noderole"
				   " AND n.isactive"
				   " ORDER BY s.shardid, n.nodeid");
}

/* Background jobs (rebalance, move, split) not yet over. */
char *
sql_citus_background_jobs(void)
{
	return pstrdup("SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_background_job j"
				   " WHERE j.state::pg_catalog.text OPERATOR(pg_catalog.=) ANY"
				   " ('{scheduled,running,cancelling,failing}'::pg_catalog.text[])");
}

/*
 * safe_backfill's version and schema in the database connected to, and how
 * many routines called safe_backfill in that schema are not the
 * extension's: one taking the value's type exactly would be a better match
 * for the shard's CALL than the extension's anycompatible one.
 */
char *
sql_citus_extension_version(void)
{
	return pstrdup("SELECT e.extversion::pg_catalog.text, n.nspname::pg_catalog.text,"
				   " (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p"
				   "   WHERE p.proname OPERATOR(pg_catalog.=) 'safe_backfill'::pg_catalog.name"
				   "   AND p.pronamespace OPERATOR(pg_catalog.=) n.oid"
				   "   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d"
				   "     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass"
				   "     AND d.objid OPERATOR(pg_catalog.=) p.oid"
				   "     AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass"
				   "     AND d.refobjid OPERATOR(pg_catalog.=) e.oid"
				   "     AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog.\"char\"))"
				   " FROM pg_catalog.pg_extension e"
				   " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
				   " WHERE e.extname OPERATOR(pg_catalog.=) 'safe_backfill'::pg_catalog.name");
}

/* pg_catalog.set_config($1, $2, false), ... for nsettings pairs */
char *
sql_citus_remote_settings(int nsettings)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	for (i = 0; i < nsettings; i++)
		appendStringInfo(&buf, "%spg_catalog.set_config($%d::pg_catalog.text, $%d::pg_catalog.text, false)",
						 i > 0 ? ", " : "", 2 * i + 1, 2 * i + 2);
	return buf.data;
}

/*
 * The ordinary backfill of one shard, on its own node: $1 the shard, $2 the
 * column, $3 the value's text, read by the input function of the column's
 * type (typname is schema-qualified), $4 batch_size, $5 pause_ms, $6 target_batch_ms.  Never
 * set_not_null: the promotion runs once, on the coordinator.
 */
char *
sql_citus_shard_call(const char *nspname, const char *typname)
{
	return psprintf("CALL %s.safe_backfill($1::pg_catalog.regclass, $2::pg_catalog.name,"
					" $3::%s, batch_size => $4::pg_catalog.int4,"
					" pause_ms => $5::pg_catalog.int4, target_batch_ms => $6::pg_catalog.int4,"
					" set_not_null => false, workers => 1, resume => true)",
					quote_identifier(nspname), typname);
}

/* Lock timeouts that Citus sends to every worker this transaction uses. */
char *
sql_citus_propagate_set_local(void)
{
	return pstrdup("SET LOCAL citus.propagate_set_commands = 'local'");
}

char *
sql_set_local_lock_timeout(int ms)
{
	return psprintf("SET LOCAL lock_timeout = %d", ms);
}

/*
 * Each node holding an active placement of a shard of table $1: host, port,
 * and its shards' qualified names as a text[] value (array_out's text, read
 * back on the node by array_in: a value, never pasted into a statement).
 */
char *
sql_citus_shard_nodes(void)
{
	return pstrdup("SELECT n.nodename, n.nodeport,"
				   " pg_catalog.array_agg(pg_catalog.shard_name(s.logicalrelid, s.shardid, false)"
				   "   ORDER BY s.shardid)::pg_catalog.text"
				   " FROM pg_catalog.pg_dist_shard s"
				   " JOIN pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) s.shardid"
				   " JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid"
				   " WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
				   " AND p.shardstate OPERATOR(pg_catalog.=) 1"
				   " AND n.noderole OPERATOR(pg_catalog.=) 'primary'::pg_catalog.noderole"
				   " AND n.isactive"
				   " GROUP BY n.nodename, n.nodeport ORDER BY n.nodename, n.nodeport");
}

/*
 * On a node, for the rest of the session: pg_class shows the shards (Citus
 * hides them from sessions whose application_name is not its own).
 */
char *
sql_citus_show_shards(void)
{
	return pstrdup("SELECT pg_catalog.set_config('citus.override_table_visibility', 'off', false)");
}

/*
 * On a node: an estimate of the rows in the relations named in $1 (a
 * text[] of its shards), never a scan - what the planner's
 * estimate_rel_size does: each shard's current size in blocks times its
 * rows per block as the last VACUUM or ANALYZE saw them, or, for a shard
 * never vacuumed nor analyzed, times $2 (rows per block for the table's
 * row width, computed by the coordinator).  The second column resolves
 * every name: a shard missing there is an error, never a shard skipped.
 */
char *
sql_citus_shard_row_estimate(void)
{
	return pstrdup("SELECT COALESCE(pg_catalog.sum("
				   "   CASE WHEN c.reltuples OPERATOR(pg_catalog.>=) 0::pg_catalog.float4"
				   "     AND c.relpages OPERATOR(pg_catalog.>) 0"
				   "   THEN c.reltuples::pg_catalog.float8 OPERATOR(pg_catalog./) c.relpages::pg_catalog.float8"
				   "   ELSE $2::pg_catalog.float8 END"
				   "   OPERATOR(pg_catalog.*) (pg_catalog.pg_relation_size(c.oid)::pg_catalog.float8"
				   "     OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::pg_catalog.float8)),"
				   " 0::pg_catalog.float8)::pg_catalog.text,"
				   " $1::pg_catalog.text[]::pg_catalog.regclass[]::pg_catalog.text"
				   " FROM pg_catalog.pg_class c"
				   " WHERE c.oid OPERATOR(pg_catalog.=) ANY"
				   "   ($1::pg_catalog.text[]::pg_catalog.regclass[]::pg_catalog.oid[])");
}

/*
 * On a node: "pid n, pid m" of the other sessions that have held a snapshot
 * (backend_xmin) in a transaction open for more than a second, in any
 * database (the horizon a round waits for counts them all), or NULL.
 */
char *
sql_citus_long_snapshot_holders(void)
{
	return pstrdup("SELECT pg_catalog.string_agg(pg_catalog.concat('pid ', a.pid), ', '::pg_catalog.text"
				   "   ORDER BY a.pid)"
				   " FROM pg_catalog.pg_stat_activity a"
				   " WHERE a.backend_xmin IS NOT NULL"
				   " AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
				   " AND a.xact_start OPERATOR(pg_catalog.<)"
				   "   (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) '1 s'::pg_catalog.interval)"
				   " AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()");
}

/*
 * On a node, right before a shard's CALL, in one round trip (simple query
 * protocol, no parameters): the extension's version and schema, then the
 * long snapshot holders.
 */
char *
sql_citus_before_shard_call(void)
{
	char	   *version = sql_citus_extension_version();
	char	   *holders = sql_citus_long_snapshot_holders();

	return psprintf("%s; %s", version, holders);
}

/* "pid n" of a pg_locks row l, or a prepared transaction's */
#define LOCK_HOLDER_NAME \
	"pg_catalog.string_agg(DISTINCT CASE WHEN l.pid IS NULL" \
	" THEN 'a prepared transaction'::pg_catalog.text" \
	" ELSE pg_catalog.concat('pid ', l.pid) END, ', '::pg_catalog.text)"

/*
 * On a node: the virtual transactions (a text[] value) of the sessions that
 * hold a lock on one of the relations named in $1 (a text[]) in this
 * database, other than this one, and "pid n, pid m".  Like WaitForLockers,
 * what is waited for is these transactions, not a moment without locks.
 * The third column resolves every name even when no lock row is left to
 * compare with: a shard missing there is an error, never a shard skipped.
 */
char *
sql_citus_lock_holder_snapshot(void)
{
	return pstrdup("SELECT pg_catalog.array_agg(DISTINCT l.virtualtransaction)::pg_catalog.text, "
				   LOCK_HOLDER_NAME ","
				   " $1::pg_catalog.text[]::pg_catalog.regclass[]::pg_catalog.text"
				   " FROM pg_catalog.pg_locks l"
				   " WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'::pg_catalog.text AND l.granted"
				   " AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d"
				   "   WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
				   " AND l.relation OPERATOR(pg_catalog.=) ANY"
				   "   ($1::pg_catalog.text[]::pg_catalog.regclass[]::pg_catalog.oid[])"
				   " AND (l.pid IS NULL OR l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())");
}

/*
 * Of the virtual transactions $1 (a text[]), those still running (holding
 * any lock, as a running transaction holds its own id's), as above.
 */
char *
sql_citus_lock_holders_left(void)
{
	return pstrdup("SELECT pg_catalog.array_agg(DISTINCT l.virtualtransaction)::pg_catalog.text, "
				   LOCK_HOLDER_NAME
				   " FROM pg_catalog.pg_locks l"
				   " WHERE l.virtualtransaction OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])");
}

/* ---------------------------------------------------------------------
 * Detached runs (detached.c): the job row and its safe_backfill_detached row
 * --------------------------------------------------------------------- */

/*
 * Whether job j is being worked on now: its worker holds the job's lock
 * (SAFE_BACKFILL_DETACHED_LOCK_SPACE, 21317, keyed by the job id), or the
 * session that runs it holds the column's (SAFE_BACKFILL_LOCK_SPACE, 21314).
 */
static const char *
sql_job_alive(void)
{
	return "EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
		" WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'::pg_catalog.text AND l.granted"
		" AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
		"   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
		" AND ((l.classid OPERATOR(pg_catalog.=) j.relid"
		"       AND l.objid OPERATOR(pg_catalog.=) j.attnum::pg_catalog.oid"
		"       AND l.objsubid OPERATOR(pg_catalog.=) 21314 AND l.pid OPERATOR(pg_catalog.=) j.pid)"
		"   OR (l.classid OPERATOR(pg_catalog.=) (j.id OPERATOR(pg_catalog.>>) 32)::pg_catalog.oid"
		"       AND l.objid OPERATOR(pg_catalog.=) (j.id OPERATOR(pg_catalog.&) 4294967295)::pg_catalog.oid"
		"       AND l.objsubid OPERATOR(pg_catalog.=) 21317)))";
}

/*
 * $1 table, $2 column: a run that keeps a new detached run off the column:
 * a detached run waiting for its worker, or any run being worked on now.
 */
char *
sql_detached_busy(const char *jobs, const char *detached)
{
	return psprintf("SELECT j.id FROM %s j WHERE j.relid OPERATOR(pg_catalog.=) $1"
					" AND j.attnum OPERATOR(pg_catalog.=) $2"
					" AND ((j.state OPERATOR(pg_catalog.=) 'queued'::pg_catalog.text"
					"       AND EXISTS (SELECT 1 FROM %s d WHERE d.job_id OPERATOR(pg_catalog.=) j.id))"
					"   OR (j.state OPERATOR(pg_catalog.=) 'running'::pg_catalog.text AND %s))"
					" ORDER BY j.id DESC LIMIT 1", jobs, detached, sql_job_alive());
}

/* A new run, queued for its worker; $1-$9 as sql_job_insert's, no pid yet. */
char *
sql_job_insert_queued(const char *table)
{
	return psprintf("INSERT INTO %s (relid, attnum, table_name, column_name,"
					" value_text, iteration, rows_estimated, username, expression, state)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued')"
					" RETURNING id", table);
}

/* $1 an unfinished run that a detached run resumes: queued for its worker. */
char *
sql_job_requeue(const char *table)
{
	return psprintf("UPDATE %s SET state = 'queued', error = NULL, finished_at = NULL,"
					" pid = NULL, updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1", table);
}

/* $1 job, $2 session role, $3 role, $4-$10 options, $11 settings */
char *
sql_detached_upsert(const char *detached)
{
	return psprintf("INSERT INTO %s (job_id, session_role, run_role, batch_size, pause_ms,"
					" set_not_null, target_batch_ms, max_replica_lag_ms, workers, resume, settings)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
					" ON CONFLICT (job_id) DO UPDATE SET session_role = EXCLUDED.session_role,"
					" run_role = EXCLUDED.run_role, batch_size = EXCLUDED.batch_size,"
					" pause_ms = EXCLUDED.pause_ms, set_not_null = EXCLUDED.set_not_null,"
					" target_batch_ms = EXCLUDED.target_batch_ms,"
					" max_replica_lag_ms = EXCLUDED.max_replica_lag_ms, workers = EXCLUDED.workers,"
					" resume = EXCLUDED.resume, settings = EXCLUDED.settings,"
					" queued_at = pg_catalog.clock_timestamp(), cancel_requested = false,"
					" sqlstate = NULL", detached);
}

/* $1 job: everything a worker, a wait or a cancel needs of it */
char *
sql_detached_load(const char *jobs, const char *detached)
{
	return psprintf("SELECT j.state, j.relid, j.column_name, j.value_text, j.expression,"
					" j.rows_done, j.rows_estimated, j.error, j.pid,"
					" d.session_role, d.run_role, d.batch_size, d.pause_ms, d.set_not_null,"
					" d.target_batch_ms, d.max_replica_lag_ms, d.workers, d.resume, d.settings,"
					" d.cancel_requested, d.sqlstate, %s AS alive"
					" FROM %s j JOIN %s d ON d.job_id OPERATOR(pg_catalog.=) j.id"
					" WHERE j.id OPERATOR(pg_catalog.=) $1", sql_job_alive(), jobs, detached);
}

/* $1 job: its worker takes it (queued, or interrupted by a restart) */
char *
sql_detached_claim(const char *table)
{
	return psprintf("UPDATE %s SET state = 'running', pid = pg_catalog.pg_backend_pid(),"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1"
					" AND state OPERATOR(pg_catalog.=) ANY ('{queued,running}'::pg_catalog.text[])"
					" RETURNING id", table);
}

/*
 * $1 job, $2 error (NULL: it ended well), $3 its SQLSTATE: the worker's last
 * word.  A run already recorded done stays done; a failure after
 * safe_backfill_cancel asked it to stop is "cancelled".
 */
char *
sql_detached_end(const char *jobs, const char *detached)
{
	return psprintf("WITH d AS (UPDATE %s SET sqlstate = $3 WHERE job_id OPERATOR(pg_catalog.=) $1"
					" RETURNING cancel_requested)"
					" UPDATE %s SET state = CASE WHEN $2 IS NULL THEN 'done'"
					"   WHEN (SELECT cancel_requested FROM d) THEN 'cancelled' ELSE 'failed' END,"
					" phase = CASE WHEN $2 IS NULL THEN 'done' ELSE phase END,"
					" error = $2, finished_at = pg_catalog.clock_timestamp(),"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE id OPERATOR(pg_catalog.=) $1"
					" AND state OPERATOR(pg_catalog.<>) 'done'::pg_catalog.text", detached, jobs);
}

/* $1 job: safe_backfill_cancel asks its worker to stop */
char *
sql_detached_request_cancel(const char *detached)
{
	return psprintf("UPDATE %s SET cancel_requested = true WHERE job_id OPERATOR(pg_catalog.=) $1",
					detached);
}

/*
 * $1 job, $2 message: cancel a run that no process works on (queued, or
 * interrupted by a restart) right away; one row when it did.
 */
char *
sql_detached_cancel_idle(const char *table)
{
	return psprintf("UPDATE %s j SET state = 'cancelled', error = $2,"
					" finished_at = pg_catalog.clock_timestamp(),"
					" updated_at = pg_catalog.clock_timestamp()"
					" WHERE j.id OPERATOR(pg_catalog.=) $1"
					" AND (j.state OPERATOR(pg_catalog.=) 'queued'::pg_catalog.text"
					"   OR (j.state OPERATOR(pg_catalog.=) 'running'::pg_catalog.text AND NOT %s))"
					" RETURNING j.id", table, sql_job_alive());
}

/* The detached runs no process works on any more, oldest first. */
char *
sql_detached_to_resume(const char *jobs, const char *detached)
{
	return psprintf("SELECT j.id, d.session_role, d.run_role FROM %s j"
					" JOIN %s d ON d.job_id OPERATOR(pg_catalog.=) j.id"
					" WHERE j.state OPERATOR(pg_catalog.=) ANY ('{queued,running}'::pg_catalog.text[])"
					" AND NOT %s ORDER BY j.id", jobs, detached, sql_job_alive());
}

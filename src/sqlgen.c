/*
 * sqlgen.c
 *		Every statement safe_backfill runs is built here.
 *
 * Identifiers go through quote_identifier, values are always $n parameters,
 * and operators are schema-qualified, so neither an argument nor the
 * caller's search_path can change what a statement means.
 */
#include "safe_backfill.h"

#include "lib/stringinfo.h"
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

static char *
qualified_operator(BackfillTarget *target, const char *op)
{
	if (target->key_op_schema == NULL)
		return pstrdup(op);
	return psprintf("OPERATOR(%s.%s)", target->key_op_schema, op);
}

/* "(k1, k2) OPERATOR(pg_catalog.>) ($2, $3)": a row comparison btree can use */
static char *
key_comparison(BackfillTarget *target, const char *op, int first_param)
{
	return psprintf("(%s) %s %s", sql_key_list(target),
					qualified_operator(target, op),
					key_params(target, first_param));
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

static void
append_update_head(StringInfo buf, BackfillTarget *target)
{
	const char *col = quote_identifier(target->colname);

	appendStringInfo(buf, "UPDATE %s SET %s = $1 WHERE %s IS NULL",
					 relation_clause(target), col, col);
}

/*
 * Fill one key range: $1 is the value, then the lower bound (exclusive) and
 * the upper bound (inclusive), each present or not.
 */
char *
sql_update_key_range(BackfillTarget *target, bool has_lower, bool has_upper)
{
	StringInfoData buf;
	int			next_param = 2;

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

	initStringInfo(&buf);
	append_update_head(&buf, target);
	appendStringInfoString(&buf, " AND ctid OPERATOR(pg_catalog.>=) $2");
	if (has_upper)
		appendStringInfoString(&buf, " AND ctid OPERATOR(pg_catalog.<) $3");
	return buf.data;
}

/* Exact row count of one leaf table, for progress when it was never analyzed. */
char *
sql_count_rows(Oid relid)
{
	return psprintf("SELECT pg_catalog.count(*) FROM ONLY %s",
					quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											   get_rel_name(relid)));
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

char *
sql_validate_constraint(BackfillTarget *target, const char *conname)
{
	return psprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s",
					target->qualified, quote_identifier(conname));
}

char *
sql_set_not_null(BackfillTarget *target)
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

/* For the hint of a refused DO INSTEAD rule. */
char *
sql_disable_rule(BackfillTarget *target, const char *rulename)
{
	return psprintf("ALTER TABLE %s DISABLE RULE %s",
					target->qualified, quote_identifier(rulename));
}

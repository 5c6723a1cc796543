/*
 * target.c
 *		Resolve and validate the (table, column) a backfill works on.
 *
 * Every check here runs once, before any row is written, so that a bad
 * argument costs nothing.  recheck_target() repeats the cheap part at the
 * start of every batch: after a commit nothing we looked at is guaranteed to
 * still be true.
 */
#include "safe_backfill.h"
#include "src/citus_nodes.h"
#include "src/sqlgen.h"
#include "src/target.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_rewrite.h"
#include "commands/trigger.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "rewrite/prs2lock.h"
#include "rewrite/rewriteDefine.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"

static const char *
relkind_description(char relkind)
{
	switch (relkind)
	{
		case RELKIND_VIEW:
			return "a view";
		case RELKIND_MATVIEW:
			return "a materialized view";
		case RELKIND_SEQUENCE:
			return "a sequence";
		case RELKIND_INDEX:
		case RELKIND_PARTITIONED_INDEX:
			return "an index";
		case RELKIND_FOREIGN_TABLE:
			return "a foreign table";
		case RELKIND_COMPOSITE_TYPE:
			return "a composite type";
		case RELKIND_TOASTVALUE:
			return "a TOAST table";
		default:
			return "not a table";
	}
}

static void
require_table(Relation rel)
{
	char		relkind = rel->rd_rel->relkind;

	if (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE)
		return;

	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
			 errdetail("\"%s\" is %s; only ordinary and partitioned tables are supported.",
					   RelationGetRelationName(rel), relkind_description(relkind)),
			 errhint("Pass the table that stores the rows.")));
}

/* Copy what we need of the column and reject columns an UPDATE cannot set. */
static void
resolve_column(BackfillTarget *target, const char *colname)
{
	HeapTuple	tup;
	Form_pg_attribute att;

	tup = SearchSysCacheAttName(target->relid, colname);
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						colname, target->relname),
				 errdetail("Nothing was changed."),
				 errhint("Add the column first, as nullable and without a volatile default: %s",
						 sql_hint_add_column(target, colname))));

	att = (Form_pg_attribute) GETSTRUCT(tup);
	if (att->attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot backfill system column \"%s\"", colname),
				 errdetail("System columns are maintained by PostgreSQL and cannot be assigned."),
				 errhint("Pass a user column of relation \"%s\".", target->relname)));
	if (att->attgenerated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot backfill generated column \"%s\"", colname),
				 errdetail("Column \"%s\" of relation \"%s\" is computed from other columns and cannot be assigned.",
						   colname, target->relname),
				 errhint("Backfill the columns it is computed from instead.")));
	if (att->attidentity != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot backfill identity column \"%s\"", colname),
				 errdetail("Column \"%s\" of relation \"%s\" is filled from its sequence and never holds NULL.",
						   colname, target->relname),
				 errhint("Pass the new, nullable column you want to fill.")));

	target->attnum = att->attnum;
	target->colname = pstrdup(NameStr(att->attname));
	target->atttypid = att->atttypid;
	target->atttypmod = att->atttypmod;
	target->attnotnull = compat_column_is_not_null(target->relid, att);
	ReleaseSysCache(tup);
}

static void
report_missing_privilege(BackfillTarget *target, const char *privilege,
						 const char *colname)
{
	const char *role = GetUserNameFromId(GetUserId(), false);

	if (colname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", target->relname),
				 errdetail("Role \"%s\" lacks %s privilege on relation \"%s\"; nothing was changed.",
						   role, privilege, target->relname),
				 errhint("Run it as the table owner, or have the owner run: %s",
						 sql_hint_grant_table(target, role))));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for table %s", target->relname),
			 errdetail("Role \"%s\" lacks %s privilege on column \"%s\" of relation \"%s\"; safe_backfill reads the key and the column and updates the column.",
					   role, privilege, colname, target->relname),
			 errhint("Run it as the table owner, or have the owner run: %s",
					 sql_hint_grant_table(target, role))));
}

static void
require_column_privilege(BackfillTarget *target, AttrNumber attnum,
						 const char *colname, AclMode mode, const char *modename)
{
	Oid			role = GetUserId();

	/* A table-level grant covers every column; column grants are extra. */
	if (pg_class_aclcheck(target->relid, role, mode) == ACLCHECK_OK ||
		pg_attribute_aclcheck(target->relid, attnum, role, mode) == ACLCHECK_OK)
		return;
	report_missing_privilege(target, modename, colname);
}

/*
 * Row-level security would make the UPDATE skip the rows the policies hide,
 * and the final count of NULLs left would not see them either: the run
 * would report success and leave NULLs behind.  Checked before anything is
 * written, and again under the lock of every batch and of the final count:
 * ENABLE / FORCE ROW LEVEL SECURITY and CREATE POLICY need ACCESS
 * EXCLUSIVE, so while that lock is held it cannot start to apply.
 */
static void
reject_row_level_security(BackfillTarget *target, bool running)
{
	if (check_enable_rls(target->relid, InvalidOid, true) != RLS_ENABLED)
		return;

	if (running)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("safe_backfill: %s: row-level security now applies to table \"%s\"",
						target->display, target->relname),
				 errdetail("Row-level security was enabled or forced on the table after the run started; its policies could hide rows from the batches and from the final count, which would then miss NULLs. The run stops; the batches committed before are kept."),
				 errhint("Call safe_backfill again as the table owner (if the table does not FORCE ROW LEVEL SECURITY) or as a role with BYPASSRLS; it fills the rows still NULL.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("row-level security is enabled for table \"%s\"", target->relname),
			 errdetail("Policies could hide rows from safe_backfill, which would then leave them NULL."),
			 errhint("Run it as the table owner or as a role with BYPASSRLS.")));
}

static void require_change_access(BackfillTarget *target);

/*
 * What the caller may read and update: every row, through the key, the
 * column and ctid.  running: the run has written batches already.
 */
static void
require_caller_access(BackfillTarget *target, bool running)
{
	int			i;

	if (target->change.kind != CHANGE_FILL)
	{
		require_change_access(target);
		return;
	}
	require_column_privilege(target, target->attnum, target->colname,
							 ACL_SELECT, "SELECT");
	require_column_privilege(target, target->attnum, target->colname,
							 ACL_UPDATE, "UPDATE");
	for (i = 0; i < target->nkeys; i++)
		require_column_privilege(target, target->keys[i].attnum,
								 target->keys[i].name, ACL_SELECT, "SELECT");
	/* the sweep that proves nothing was missed reads ctid ranges */
	require_column_privilege(target, SelfItemPointerAttributeNumber, "ctid",
							 ACL_SELECT, "SELECT");
	reject_row_level_security(target, running);
}

/*
 * safe_update and safe_delete: what their statements need, as a plain
 * UPDATE or DELETE of the rows would (UPDATE on each column set, or DELETE),
 * and SELECT on the key and ctid they walk by; what the set list and the
 * predicate read is checked by the probe (change.c).  Row-level security
 * applies to their statements as to the plain one: it is not refused.
 */
static void
require_change_access(BackfillTarget *target)
{
	int			i;

	for (i = 0; i < target->change.nset; i++)
		require_column_privilege(target, target->change.set[i].attnum,
								 target->change.set[i].name, ACL_UPDATE, "UPDATE");
	if (target->change.kind == CHANGE_DELETE && !target->change.dry_run &&
		pg_class_aclcheck(target->relid, GetUserId(), ACL_DELETE) != ACLCHECK_OK)
		report_missing_privilege(target, "DELETE", NULL);
	for (i = 0; i < target->nkeys; i++)
		require_column_privilege(target, target->keys[i].attnum,
								 target->keys[i].name, ACL_SELECT, "SELECT");
	require_column_privilege(target, SelfItemPointerAttributeNumber, "ctid",
							 ACL_SELECT, "SELECT");
}

void
check_backfill_privileges(BackfillTarget *target)
{
	require_caller_access(target, false);
}

/*
 * Whether the caller may read the table's tableoid: a partitioned table
 * walked by key learns each leaf's range of a batch from it, and a caller
 * with column privileges without it just goes without (iterate.c).
 */
bool
caller_may_read_tableoid(BackfillTarget *target)
{
	Oid			role = GetUserId();

	return pg_class_aclcheck(target->relid, role, ACL_SELECT) == ACLCHECK_OK ||
		pg_attribute_aclcheck(target->relid, TableOidAttributeNumber, role,
							  ACL_SELECT) == ACLCHECK_OK;
}

/*
 * An expression run's probe (expression.c) reads each row's tableoid with
 * its ctid, the row identity a batch computes the value for: a caller with
 * column privileges must have it too, as documented.
 */
void
check_expression_privileges(BackfillTarget *target)
{
	require_column_privilege(target, TableOidAttributeNumber, "tableoid",
							 ACL_SELECT, "SELECT");
}

/*
 * The schema of the btree comparison operator a key column's index uses, so
 * the statements can name it as OPERATOR(schema.>) and not depend on the
 * caller's search_path.
 */
static Oid
key_operator_namespace(Oid opfamily, Oid opcintype)
{
	Oid			opno = get_opfamily_member(opfamily, opcintype, opcintype,
										   BTGreaterStrategyNumber);
	HeapTuple	tup;
	Oid			nsp;

	if (!OidIsValid(opno))
		return InvalidOid;
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	nsp = ((Form_pg_operator) GETSTRUCT(tup))->oprnamespace;
	ReleaseSysCache(tup);
	return nsp;
}

/* A btree strategy's operator of the key's opfamily, as OPERATOR(schema.name). */
static char *
qualified_key_operator(Oid opfamily, Oid opcintype, int16 strategy)
{
	Oid			opno = get_opfamily_member(opfamily, opcintype, opcintype, strategy);
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *result;

	if (!OidIsValid(opno))
		elog(ERROR, "safe_backfill: operator %d of operator family %u is missing",
			 strategy, opfamily);
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/*
 * Use the primary key as the keyset when there is one.  Tables without one
 * are walked by ranges of heap blocks (nkeys stays 0).
 */
static void
resolve_primary_key(BackfillTarget *target, Relation rel)
{
	Oid			pkoid = compat_primary_key_index(rel);
	Relation	index;
	Oid			opnsp = InvalidOid;
	bool		same_namespace = true;
	int			i;

	if (!OidIsValid(pkoid))
		return;

	index = index_open(pkoid, AccessShareLock);
	target->nkeys = IndexRelationGetNumberOfKeyAttributes(index);
	target->keys = palloc0(sizeof(KeyColumn) * target->nkeys);
	for (i = 0; i < target->nkeys; i++)
	{
		KeyColumn  *key = &target->keys[i];
		Form_pg_attribute att;
		Oid			nsp;

		key->attnum = index->rd_index->indkey.values[i];
		att = TupleDescAttr(RelationGetDescr(rel), key->attnum - 1);
		key->name = pstrdup(NameStr(att->attname));
		key->typid = att->atttypid;
		get_typlenbyval(key->typid, &key->typlen, &key->typbyval);

		key->cmpproc = get_opfamily_proc(index->rd_opfamily[i], index->rd_opcintype[i],
										 index->rd_opcintype[i], BTORDER_PROC);
		key->collation = index->rd_indcollation[i];
		key->op_lt = qualified_key_operator(index->rd_opfamily[i], index->rd_opcintype[i],
											BTLessStrategyNumber);
		key->op_le = qualified_key_operator(index->rd_opfamily[i], index->rd_opcintype[i],
											BTLessEqualStrategyNumber);
		key->op_eq = qualified_key_operator(index->rd_opfamily[i], index->rd_opcintype[i],
											BTEqualStrategyNumber);
		key->op_gt = qualified_key_operator(index->rd_opfamily[i], index->rd_opcintype[i],
											BTGreaterStrategyNumber);
		key->op_ge = qualified_key_operator(index->rd_opfamily[i], index->rd_opcintype[i],
											BTGreaterEqualStrategyNumber);
		nsp = key_operator_namespace(index->rd_opfamily[i], index->rd_opcintype[i]);
		if (i == 0)
			opnsp = nsp;
		else if (nsp != opnsp)
			same_namespace = false;
	}
	index_close(index, AccessShareLock);

	/*
	 * A row comparison takes one operator name for all its columns; when the
	 * key's types keep their operators in different schemas, sqlgen.c spells
	 * the comparison out column by column with each column's own operators.
	 */
	if (same_namespace && OidIsValid(opnsp))
		target->key_op_schema = pstrdup(quote_identifier(get_namespace_name(opnsp)));
}

static char *
display_name(Oid relid, const char *nspname, const char *relname,
			 const char *colname)
{
	/* safe_update and safe_delete change the table's rows, not one column */
	if (colname == NULL)
		return RelationIsVisible(relid) ? pstrdup(quote_identifier(relname)) :
			pstrdup(quote_qualified_identifier(nspname, relname));
	if (RelationIsVisible(relid))
		return psprintf("%s.%s", quote_identifier(relname), quote_identifier(colname));
	return psprintf("%s.%s", quote_qualified_identifier(nspname, relname),
					quote_identifier(colname));
}

/* What a run's batches do to the rows they change, for messages. */
const char *
change_verb(BackfillTarget *target)
{
	if (target->change.dry_run)
		return "matched";
	switch (target->change.kind)
	{
		case CHANGE_UPDATE:
			return "updated";
		case CHANGE_DELETE:
			return "deleted";
		default:
			return "filled";
	}
}

BackfillTarget *
resolve_target(Oid relid, const char *colname)
{
	BackfillTarget *target = palloc0(sizeof(BackfillTarget));
	Relation	rel;

	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errdetail("It may have been dropped after the name was resolved."),
				 errhint("Pass the table by name, e.g. 'my_schema.my_table'.")));

	target->relid = relid;
	target->relkind = rel->rd_rel->relkind;
	target->relname = pstrdup(RelationGetRelationName(rel));
	target->nspname = get_namespace_name(RelationGetNamespace(rel));
	target->qualified = pstrdup(quote_qualified_identifier(target->nspname,
														   target->relname));
	require_table(rel);

	target->change.procname = "safe_backfill";
	if (colname != NULL)
		resolve_column(target, colname);
	else
	{
		/* no column: a change's statements declare an unused $1 of this type */
		target->atttypid = INT4OID;
		target->atttypmod = -1;
	}
	resolve_primary_key(target, rel);

	target->only = (target->relkind == RELKIND_RELATION);
	target->citus_table = citus_table_kind(target->relid) != CITUS_TABLE_NONE;
	target->has_children = target->only && rel->rd_rel->relhassubclass &&
		has_subclass(relid);
	target->display = display_name(relid, target->nspname, target->relname,
								   target->colname);
	get_typlenbyval(target->atttypid, &target->typlen, &target->typbyval);

	relation_close(rel, AccessShareLock);
	return target;
}

Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* ALTER TABLE needs ownership; say so before anything is changed. */
void
require_table_owner(BackfillTarget *target, const char *procname)
{
	Oid			role = GetUserId();
	Oid			owner = relation_owner(target->relid);

	if (compat_table_ownercheck(target->relid, role))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of table %s", target->relname),
			 errdetail("%s runs ALTER TABLE, which only the owner may run; role \"%s\" is not a member of the owning role \"%s\".",
					   procname, GetUserNameFromId(role, false),
					   GetUserNameFromId(owner, false)),
			 errhint("Run it as role \"%s\" (%s), or as a member of it.",
					 GetUserNameFromId(owner, false),
					 sql_hint_set_role(GetUserNameFromId(owner, false)))));
}

/*
 * Every statement names the table by its text, and a kept plan re-resolves
 * that text when the catalog changes: after "ALTER TABLE t RENAME TO t_old;
 * CREATE TABLE t (...)" the old text names another table.  So whenever we
 * hold a lock on the table (a rename needs ACCESS EXCLUSIVE, so it cannot
 * happen while we hold any lock), read its current schema and name back
 * from its OID.  If they changed, follow the table: the statements are
 * rebuilt from the new name (target->run.generation tells the iterator to drop
 * its kept plans).  A table that merely took over the old name is never
 * touched.  The caller must hold a lock on target->relid.
 */
void
follow_target_rename(BackfillTarget *target)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(target->relid));
	Form_pg_class cls;
	char	   *relname;
	char	   *nspname;
	char	   *old_display;
	MemoryContext cxt;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" was dropped while safe_backfill was running",
						target->relname),
				 errdetail("Work committed before the drop is gone with the table.")));
	cls = (Form_pg_class) GETSTRUCT(tup);
	relname = pstrdup(NameStr(cls->relname));
	nspname = get_namespace_name(cls->relnamespace);
	ReleaseSysCache(tup);
	if (nspname == NULL)
		elog(ERROR, "cache lookup failed for namespace of relation %u", target->relid);
	if (strcmp(relname, target->relname) == 0 && strcmp(nspname, target->nspname) == 0)
		return;

	/* the target outlives our commits: keep its strings where it lives */
	cxt = GetMemoryChunkContext(target);
	old_display = target->display;
	target->relname = MemoryContextStrdup(cxt, relname);
	target->nspname = MemoryContextStrdup(cxt, nspname);
	target->qualified = MemoryContextStrdup(cxt, quote_qualified_identifier(nspname, relname));
	target->display = MemoryContextStrdup(cxt, display_name(target->relid, nspname, relname,
															 target->colname));
	target->run.generation++;
	ereport(NOTICE,
			(errmsg("safe_backfill: %s: the table was renamed to %s; going on with the same table under its new name",
					old_display, target->qualified),
			 errdetail("Statements are rebuilt from the table's OID, so a table created under the old name is not touched.")));
}

/*
 * safe_update's statements name the columns they set, and its trees were
 * analysed for their types: a column dropped, renamed or retyped since
 * stops the run before the batch, rather than writing another column or a
 * value of the old type.
 */
static void
recheck_set_columns(BackfillTarget *target)
{
	int			i;

	for (i = 0; i < target->change.nset; i++)
	{
		SetColumn  *col = &target->change.set[i];
		HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(target->relid),
										  Int16GetDatum(col->attnum));
		Form_pg_attribute att;
		bool		same;

		if (!HeapTupleIsValid(tup))
			same = false;
		else
		{
			att = (Form_pg_attribute) GETSTRUCT(tup);
			same = !att->attisdropped && strcmp(NameStr(att->attname), col->name) == 0 &&
				att->atttypid == col->typid && att->atttypmod == col->typmod;
			ReleaseSysCache(tup);
		}
		if (!same)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("%s: column \"%s\" of relation \"%s\" was dropped, renamed or changed while the run was running",
							target->change.procname, col->name, target->relname),
					 errdetail("The set list was checked against the column as it was; batches committed before the change are kept."),
					 errhint("Call %s again with the column as it is now.", target->change.procname)));
	}
}

/*
 * Start of every batch: take the lock the UPDATE will take anyway, then make
 * sure the table and column are still the ones we validated.  Without this a
 * concurrent DROP or ALTER TYPE would surface as a confusing planner error,
 * or worse, as a value of the old type written into the new column.
 */
void
recheck_target(BackfillTarget *target)
{
	recheck_target_with_lock(target, RowExclusiveLock);
}

/* The same checks under the lock a statement other than the UPDATE needs. */
void
recheck_target_with_lock(BackfillTarget *target, LOCKMODE lockmode)
{
	HeapTuple	tup;
	Form_pg_attribute att;

	LockRelationOid(target->relid, lockmode);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(target->relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" was dropped while safe_backfill was running",
						target->relname),
				 errdetail("Batches committed before the drop are gone with the table.")));
	follow_target_rename(target);
	if (target->change.kind != CHANGE_FILL)
	{
		recheck_set_columns(target);
		require_caller_access(target, true);
		return;
	}

	tup = SearchSysCacheAttName(target->relid, target->colname);
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" was dropped or renamed while safe_backfill was running",
						target->colname, target->relname),
				 errdetail("Batches committed before the change are kept."),
				 errhint("Call safe_backfill again with the column's current name.")));
	att = (Form_pg_attribute) GETSTRUCT(tup);
	if (att->attnum != target->attnum || att->atttypid != target->atttypid ||
		att->atttypmod != target->atttypmod)
	{
		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("column \"%s\" of relation \"%s\" changed while safe_backfill was running",
						target->colname, target->relname),
				 errdetail("Its type changed after the value was checked; batches committed before the change are kept."),
				 errhint("Call safe_backfill again, so the value is checked against the new type.")));
	}
	ReleaseSysCache(tup);
	/* a grant revoked or row-level security enabled since the last batch */
	require_caller_access(target, true);
}

/* Leaf relations that store rows: the table itself, or its partitions. */
List *
storage_relations(Oid relid)
{
	List	   *leaves = NIL;
	ListCell   *lc;
	List	   *all;

	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return list_make1_oid(relid);

	all = find_all_inheritors(relid, AccessShareLock, NULL);
	foreach(lc, all)
	{
		Oid			child = lfirst_oid(lc);

		if (get_rel_relkind(child) == RELKIND_RELATION)
			leaves = lappend_oid(leaves, child);
	}
	return leaves;
}

/*
 * A table never vacuumed or analyzed has no reltuples, and the planner's
 * guess from its width can be off by half, which makes progress and eta
 * nonsense.  Count it then: one read-only scan, a small price next to the
 * update of every row that follows.
 */
static bool
never_analyzed(Relation rel)
{
	return rel->rd_rel->reltuples < 0 ||
		(rel->rd_rel->reltuples == 0 && rel->rd_rel->relpages == 0 &&
		 RelationGetNumberOfBlocks(rel) > 0);
}

/*
 * Whether the caller may count a leaf's rows itself: SELECT on it, or on one
 * of its columns.  A partition's privileges are its own, and a caller who
 * may read the partitioned table need not have any on its leaves; such a
 * leaf is estimated from its size instead.
 */
static bool
caller_can_count(Oid relid)
{
	return pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK ||
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_SELECT, ACLMASK_ANY) == ACLCHECK_OK;
}

/*
 * Run a query that returns one count (SELECT pg_catalog.count(*) ...) and
 * return it; what names the count in the error.  read_only false makes SPI
 * take a new snapshot for the statement.
 */
int64
run_count_query(const char *sql, bool read_only, const char *what)
{
	int			rc = SPI_execute(sql, read_only, 0);
	bool		isnull;
	int64		n;

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "safe_backfill: counting %s failed: %s", what,
			 SPI_result_code_string(rc));
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * The planner's own row estimate (reltuples scaled to the current size), or
 * an exact count for a table that was never analyzed.
 */
double
estimate_table_rows(Oid relid)
{
	List	   *leaves;
	ListCell   *lc;
	double		total = 0;

	/*
	 * a Citus table's rows are in its shards, not in the coordinator's
	 * table: count them through Citus
	 */
	if (citus_table_kind(relid) != CITUS_TABLE_NONE)
		return (double) run_count_query(sql_count_rows(relid), true, "rows");
	leaves = storage_relations(relid);
	foreach(lc, leaves)
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		int32	   *widths = palloc0(sizeof(int32) * (RelationGetNumberOfAttributes(rel) + 1));
		BlockNumber pages;
		double		tuples;
		double		allvisfrac;

		if (never_analyzed(rel) && caller_can_count(RelationGetRelid(rel)))
			tuples = (double) run_count_query(sql_count_rows(RelationGetRelid(rel)), true, "rows");
		else
			estimate_rel_size(rel, widths, &pages, &tuples, &allvisfrac);
		total += tuples;
		pfree(widths);
		table_close(rel, AccessShareLock);
	}
	return total;
}

/* Size of the largest leaf: a ctid range is applied to each leaf alike. */
BlockNumber
table_block_count(Oid relid)
{
	List	   *leaves = storage_relations(relid);
	ListCell   *lc;
	BlockNumber largest = 0;

	foreach(lc, leaves)
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		BlockNumber n = RelationGetNumberOfBlocks(rel);

		largest = Max(largest, n);
		table_close(rel, AccessShareLock);
	}
	return largest;
}

int
storage_relation_count(Oid relid)
{
	return list_length(storage_relations(relid));
}

/*
 * Is the primary key the keyset walks still there, on the same columns and
 * with the same ordering?  Without it every batch's "ORDER BY key LIMIT n"
 * becomes a full scan plus a sort.  Called after recheck_target() locked the
 * table, so the relcache is current.
 */
bool
primary_key_still_serves(BackfillTarget *target)
{
	Relation	rel = relation_open(target->relid, NoLock);
	Oid			pkoid = compat_primary_key_index(rel);
	bool		same = false;

	if (OidIsValid(pkoid))
	{
		Relation	index = index_open(pkoid, AccessShareLock);
		int			i;

		same = IndexRelationGetNumberOfKeyAttributes(index) == target->nkeys;
		for (i = 0; same && i < target->nkeys; i++)
		{
			KeyColumn  *key = &target->keys[i];

			same = index->rd_index->indkey.values[i] == key->attnum &&
				index->rd_indcollation[i] == key->collation &&
				get_opfamily_proc(index->rd_opfamily[i], index->rd_opcintype[i],
								  index->rd_opcintype[i], BTORDER_PROC) == key->cmpproc;
		}
		index_close(index, AccessShareLock);
	}
	relation_close(rel, NoLock);
	return same;
}

static char *
rule_name(Oid ruleid)
{
	Relation	rewrite = table_open(RewriteRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *name = NULL;

	ScanKeyInit(&key, Anum_pg_rewrite_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ruleid));
	scan = systable_beginscan(rewrite, RewriteOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		name = pstrdup(NameStr(((Form_pg_rewrite) GETSTRUCT(tup))->rulename));
	systable_endscan(scan);
	table_close(rewrite, AccessShareLock);
	return name ? name : psprintf("%u", ruleid);
}

/* Is this rule one the rewriter applies in this session? */
static bool
rule_fires(RewriteRule *rule)
{
	if (rule->enabled == RULE_DISABLED)
		return false;
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return rule->enabled == RULE_FIRES_ON_REPLICA || rule->enabled == RULE_FIRES_ALWAYS;
	return rule->enabled != RULE_FIRES_ON_REPLICA;
}

/*
 * A DO INSTEAD rule on UPDATE replaces each batch's UPDATE by something
 * else (or by nothing): the batch would not know what it filled and the
 * NULLs would stay.  Refuse before anything is written, and again before
 * each batch, since a rule can be created while the run sleeps.
 */
void
reject_instead_rules(BackfillTarget *target)
{
	Relation	rel;
	char	   *rulename = NULL;
	CmdType		event = target->change.kind == CHANGE_DELETE ? CMD_DELETE : CMD_UPDATE;
	int			i;

	/* a dry run's SELECT is rewritten by no rule of a table */
	if (target->change.dry_run)
		return;
	rel = relation_open(target->relid, AccessShareLock);
	for (i = 0; rel->rd_rules && i < rel->rd_rules->numLocks; i++)
	{
		RewriteRule *rule = rel->rd_rules->rules[i];

		if (rule->event == event && rule->isInstead && rule_fires(rule))
		{
			rulename = rule_name(rule->ruleId);
			break;
		}
	}
	relation_close(rel, AccessShareLock);
	if (rulename == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s: table \"%s\" has a DO INSTEAD rule for %s",
					target->change.procname, target->relname,
					event == CMD_DELETE ? "DELETE" : "UPDATE"),
			 errdetail("Rule \"%s\" replaces the %s of each batch, so the rows would not be %s; nothing was changed.",
					   rulename, event == CMD_DELETE ? "DELETE" : "UPDATE", change_verb(target)),
			 target->change.kind == CHANGE_FILL ?
			 errhint("Disable the rule while the column is filled (%s), or fill the table the rule writes to instead.",
					 sql_disable_rule(target, rulename)) :
			 errhint("Disable the rule while the run goes (%s), or run it on the table the rule writes to instead.",
					 sql_disable_rule(target, rulename))));
}

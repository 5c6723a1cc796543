/*
 * not_null.c
 *		Make a column NOT NULL without scanning the table under ACCESS
 *		EXCLUSIVE.
 *
 * ALTER COLUMN SET NOT NULL skips its full-table scan when a valid CHECK
 * constraint already proves the column has no NULLs.  So: find such a CHECK
 * or add one NOT VALID (brief ACCESS EXCLUSIVE, no scan), VALIDATE it (scans,
 * but under SHARE UPDATE EXCLUSIVE: reads and writes go on), SET NOT NULL
 * (brief, proven by the CHECK), and drop the helper CHECK in a statement of
 * its own.  Each step is its own transaction, so a failure or a cancel leaves
 * a state a second call resumes from.  Only the CHECK this very call added
 * (known by its OID) is ever dropped by default: one left by an interrupted
 * earlier call, or a user's that happens to look like ours, is kept.
 */
#include "safe_backfill.h"
#include "src/locking.h"
#include "src/not_null.h"
#include "src/not_null_native.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/validate.h"
#include "src/xact.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_class.h"
#include "commands/tablecmds.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#define PROCNAME SET_NOT_NULL_PROCNAME

/* The label in the names of the CHECK constraints this procedure adds. */
#define HELPER_LABEL "not_null_safe_backfill"

typedef struct ProvingCheck
{
	char	   *name;			/* NULL when there is none */
	Oid			oid;
	bool		validated;
	bool		added;			/* added by this very call: ours to drop */
} ProvingCheck;

static NullTest *
column_is_not_null(BackfillTarget *target)
{
	NullTest   *test = makeNode(NullTest);

	test->arg = (Expr *) makeVar(1, target->attnum, target->atttypid,
								 target->atttypmod,
								 get_typcollation(target->atttypid), 0);
	test->nulltesttype = IS_NOT_NULL;
	test->argisrow = false;
	test->location = -1;
	return test;
}

/*
 * Does this CHECK expression prove the column IS NOT NULL?  The same proof
 * PostgreSQL itself makes before skipping the scan (weak implication: a CHECK
 * only promises its expression is not false).
 */
static bool
check_proves_not_null(Node *expr, NullTest *test)
{
	expr = eval_const_expressions(NULL, expr);
	expr = (Node *) canonicalize_qual((Expr *) expr, true);
	return predicate_implied_by(list_make1(test),
								make_ands_implicit((Expr *) expr), true);
}

/*
 * SET NOT NULL recurses to inheritance children and partitions, and checks
 * each of them for a proof of its own.  A NO INHERIT CHECK exists on the
 * parent only: with children, using it would have them scanned under
 * ACCESS EXCLUSIVE.
 */
static bool
check_covers_children(BackfillTarget *target, Form_pg_constraint con)
{
	return !con->connoinherit ||
		!(target->has_children || target->relkind == RELKIND_PARTITIONED_TABLE);
}

/* Prefer a validated CHECK, else one NOT VALID we can validate. */
static ProvingCheck
find_proving_check(BackfillTarget *target)
{
	ProvingCheck found = {NULL, InvalidOid, false, false};
	NullTest   *test = column_is_not_null(target);
	Relation	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(target->relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		bool		isnull;
		Datum		bin;

		if (con->contype != CONSTRAINT_CHECK || (found.name && found.validated) ||
			!check_covers_children(target, con))
			continue;
		bin = heap_getattr(tup, Anum_pg_constraint_conbin,
						   RelationGetDescr(conrel), &isnull);
		if (isnull ||
			!check_proves_not_null(stringToNode(TextDatumGetCString(bin)), test))
			continue;
		if (found.name == NULL || con->convalidated)
		{
			found.name = pstrdup(NameStr(con->conname));
			found.oid = con->oid;
			found.validated = con->convalidated;
		}
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return found;
}

static bool
column_is_already_not_null(BackfillTarget *target)
{
	HeapTuple	tup = SearchSysCacheAttName(target->relid, target->colname);
	bool		notnull;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" was dropped or renamed while %s was running",
						target->colname, target->relname, PROCNAME)));
	notnull = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
	ReleaseSysCache(tup);
	return notnull;
}


/*
 * VALIDATE failed and no row is NULL: the CHECK proves NOT NULL but asks for
 * more, and some row breaks that other part.  Say so, not "0 null values".
 */
static void
report_other_violation(BackfillTarget *target, const char *conname, bool removed_helper)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("check constraint \"%s\" of relation \"%s\" is violated by some row",
					conname, target->relname),
			 errdetail("Column \"%s\" has no null values, but the constraint also requires something else that some rows do not meet; %s",
					   target->colname,
					   removed_helper ? "the constraint this call added was removed and nothing else changed." :
					   "the constraint was left as it was and nothing changed."),
			 errhint("Fix the rows the constraint rejects, or drop it and call %s again: it then adds a CHECK of its own.",
					 PROCNAME)));
}

/*
 * One safe_set_not_null per column at a time: two would each add, validate
 * and drop the same helper constraint under each other's feet.  A
 * session-level advisory lock, separate from the one of safe_backfill's
 * jobs; a second call waits for the first (holding no snapshot while it
 * waits), and then usually finds the column NOT NULL already.
 */
static void
lock_promotion(BackfillTarget *target, LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) target->relid,
						 (uint32) target->attnum, SAFE_BACKFILL_PROMOTION_LOCK_SPACE);
	if (LockAcquire(tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
		return;
	ereport(NOTICE,
			(errmsg("%s: %s: waiting for the %s running in another session on the same column",
					PROCNAME, target->display, PROCNAME)));
	commit_transaction();
	(void) LockAcquire(tag, ExclusiveLock, true, false);
	/* a fresh transaction sees what the other call committed meanwhile */
	commit_transaction();
}

/* Find or add the CHECK, validate it, SET NOT NULL, drop the CHECK if asked. */
static void
promote_column(BackfillTarget *target, const LockPolicy *policy, int drop_check)
{
	ProvingCheck check;
	double		held_ms = 0;
	int			exclusive_steps = 0;
	bool		dropped = false;
	TimestampTz started = GetCurrentTimestamp();

	if (set_not_null_natively(target, policy))
		return;					/* PostgreSQL 18: not_null_native.c */
	if (column_is_already_not_null(target))
	{
		ereport(NOTICE,
				(errmsg("%s: %s: column is already NOT NULL, nothing to do",
						PROCNAME, target->display)));
		return;
	}

	check = find_proving_check(target);
	if (check.name == NULL)
	{
		check.name = ChooseConstraintName(target->relname, target->colname,
										  HELPER_LABEL,
										  get_rel_namespace(target->relid), NIL);
		run_exclusive_step(target, PROCNAME, "ADD CHECK NOT VALID",
						   sql_add_not_null_check, check.name, policy, &held_ms);
		exclusive_steps++;
		/* remember which constraint is ours: only that one is ever dropped */
		check.oid = get_relation_constraint_oid(target->relid, check.name, false);
		check.added = true;
		ereport(NOTICE,
				(errmsg("%s: %s: added CHECK (%s IS NOT NULL) NOT VALID as \"%s\"",
						PROCNAME, target->display,
						quote_identifier(target->colname), check.name)));
	}
	else
		ereport(NOTICE,
				(errmsg("%s: %s: using existing CHECK constraint \"%s\"%s",
						PROCNAME, target->display, check.name,
						check.validated ? "" : " (NOT VALID)")));

	if (!check.validated)
	{
		TimestampTz t0 = GetCurrentTimestamp();

		if (!validate_constraint(target, check.name, ERRCODE_CHECK_VIOLATION, check.added))
		{
			int64		nulls = count_nulls(target);

			commit_transaction();
			if (check.added)
				drop_constraint_if_ours(target, check.oid, check.name, policy, &held_ms);
			if (nulls == 0)
				report_other_violation(target, check.name, check.added);
			report_nulls_left(target, "CHECK", check.name, nulls, check.added);
		}
		commit_transaction();
		ereport(NOTICE,
				(errmsg("%s: %s: validated \"%s\" without blocking reads or writes",
						PROCNAME, target->display, check.name),
				 errdetail("VALIDATE took %.1f ms under SHARE UPDATE EXCLUSIVE.", elapsed_ms(t0))));
	}

	run_exclusive_step(target, PROCNAME, "SET NOT NULL",
					   sql_set_not_null, NULL, policy, &held_ms);
	exclusive_steps++;

	if (drop_check == 1 || (drop_check == -1 && check.added))
	{
		dropped = drop_constraint_if_ours(target, check.oid, check.name, policy, &held_ms);
		exclusive_steps++;
	}

	ereport(NOTICE,
			(errmsg("%s: %s: column is NOT NULL, proven by \"%s\" without a table scan%s",
					PROCNAME, target->display, check.name,
					dropped ? ", which was then dropped" : ", which is kept"),
			 errdetail("ACCESS EXCLUSIVE held %d times, %.2f ms in total; %.2f s overall.",
					   exclusive_steps, held_ms, elapsed_ms(started) / 1000.0)));
}

/*
 * The promotion itself.  drop_check: 1 drop the CHECK used, 0 keep it,
 * -1 drop it only if this call added it.
 */
void
run_set_not_null(BackfillTarget *target, const LockPolicy *policy, int drop_check)
{
	LOCKTAG		tag;

	lock_promotion(target, &tag);
	PG_TRY();
	{
		promote_column(target, policy, drop_check);
	}
	PG_CATCH();
	{
		LockRelease(&tag, ExclusiveLock, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	LockRelease(&tag, ExclusiveLock, true);
}

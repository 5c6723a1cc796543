/*
 * not_null_native.c
 *		safe_set_not_null on PostgreSQL 18 and later: a NOT NULL constraint
 *		added NOT VALID, then validated, instead of the CHECK detour.
 *
 * From 18 on NOT NULL is a constraint in pg_constraint.  ADD CONSTRAINT ...
 * NOT NULL col NOT VALID takes ACCESS EXCLUSIVE briefly and scans nothing
 * (rows written from then on are checked); VALIDATE CONSTRAINT scans under
 * SHARE UPDATE EXCLUSIVE, so reads and writes go on, and marks the constraint
 * valid: attnotnull was already set by the ADD, so there is no second scan and
 * no further ACCESS EXCLUSIVE step, and no helper constraint to drop.
 * Partitions and inheritance children get the constraint from the ADD and are
 * validated with their parent.  Each step is its own transaction, so a
 * failure or a cancel leaves a NOT VALID constraint a second call validates.
 */
#include "safe_backfill.h"
#include "src/locking.h"
#include "src/not_null_native.h"
#include "src/sqlgen.h"
#include "src/validate.h"
#include "src/xact.h"

#if HAVE_NOT_NULL_NOT_VALID

#include "access/htup_details.h"
#include "catalog/pg_constraint.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#define PROCNAME SET_NOT_NULL_PROCNAME

/* The column's NOT NULL constraint, valid or not. */
typedef struct NotNullConstraint
{
	char	   *name;			/* NULL when there is none */
	Oid			oid;
	bool		validated;
} NotNullConstraint;

static void
require_same_column(BackfillTarget *target)
{
	if (get_attnum(target->relid, target->colname) != target->attnum)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" was dropped or renamed while %s was running",
						target->colname, target->relname, PROCNAME)));
}

static NotNullConstraint
find_not_null_constraint(BackfillTarget *target)
{
	NotNullConstraint found = {NULL, InvalidOid, false};
	HeapTuple	tup = findNotNullConstraintAttnum(target->relid, target->attnum);

	if (HeapTupleIsValid(tup))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

		found.name = pstrdup(NameStr(con->conname));
		found.oid = con->oid;
		found.validated = con->convalidated;
		heap_freetuple(tup);
	}
	return found;
}



/* Add the column's NOT NULL constraint NOT VALID; returns its name. */
static char *
add_not_null_not_valid(BackfillTarget *target, const LockPolicy *policy,
					   double *held_ms)
{
	/* the name ALTER COLUMN SET NOT NULL would give it */
	char	   *conname = ChooseConstraintName(target->relname, target->colname,
											   "not_null",
											   get_rel_namespace(target->relid),
											   NIL);

	run_exclusive_step(target, PROCNAME, "ADD NOT NULL NOT VALID",
					   sql_add_not_null_not_valid, conname, policy, held_ms);
	ereport(NOTICE,
			(errmsg("%s: %s: added NOT NULL constraint \"%s\" NOT VALID",
					PROCNAME, target->display, conname)));
	return conname;
}

/*
 * The promotion through a native NOT NULL constraint.  Returns true: it
 * always handles the call on this version.  CHECK constraints on the column
 * are neither used nor dropped.
 */
bool
set_not_null_natively(BackfillTarget *target, const LockPolicy *policy)
{
	NotNullConstraint nn;
	double		held_ms = 0;
	int			exclusive_steps = 0;
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz validate_start;
	bool		added;

	require_same_column(target);
	nn = find_not_null_constraint(target);
	if (nn.name != NULL && nn.validated)
	{
		ereport(NOTICE,
				(errmsg("%s: %s: column is already NOT NULL, nothing to do",
						PROCNAME, target->display)));
		return true;
	}

	added = (nn.name == NULL);
	if (added)
	{
		nn.name = add_not_null_not_valid(target, policy, &held_ms);
		exclusive_steps++;
		/* remember which constraint is ours: only that one is ever dropped */
		nn.oid = get_relation_constraint_oid(target->relid, nn.name, false);
	}
	else
		ereport(NOTICE,
				(errmsg("%s: %s: using existing NOT NULL constraint \"%s\" (NOT VALID)",
						PROCNAME, target->display, nn.name)));

	validate_start = GetCurrentTimestamp();
	if (!validate_constraint(target, nn.name, ERRCODE_NOT_NULL_VIOLATION, added))
	{
		int64		nulls = count_nulls(target);

		commit_transaction();
		if (added)
			drop_constraint_if_ours(target, nn.oid, nn.name, policy, &held_ms);
		report_nulls_left(target, "NOT NULL", nn.name, nulls, added);
	}
	commit_transaction();

	ereport(NOTICE,
			(errmsg("%s: %s: column is NOT NULL, constraint \"%s\" validated without blocking reads or writes",
					PROCNAME, target->display, nn.name),
			 errdetail_plural("VALIDATE took %.1f ms under SHARE UPDATE EXCLUSIVE; ACCESS EXCLUSIVE held %d time, %.2f ms in total; %.2f s overall.",
							  "VALIDATE took %.1f ms under SHARE UPDATE EXCLUSIVE; ACCESS EXCLUSIVE held %d times, %.2f ms in total; %.2f s overall.",
							  exclusive_steps,
							  elapsed_ms(validate_start), exclusive_steps, held_ms,
							  elapsed_ms(started) / 1000.0)));
	return true;
}

#else							/* !HAVE_NOT_NULL_NOT_VALID */

/* Before 18 NOT NULL cannot be NOT VALID: not_null.c takes the CHECK detour. */
bool
set_not_null_natively(BackfillTarget *target, const LockPolicy *policy)
{
	return false;
}

#endif							/* HAVE_NOT_NULL_NOT_VALID */

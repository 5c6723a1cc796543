/*
 * validate.c
 *		VALIDATE CONSTRAINT for safe_set_not_null, and the NULLs a failed
 *		one leaves.
 *
 * Both ways of promoting a column validate a NOT VALID constraint under
 * SHARE UPDATE EXCLUSIVE: the helper CHECK (not_null.c) and, from 18 on, the
 * native NOT NULL constraint (not_null_native.c, which not_null.c hands the
 * call to).  What they share lives here, below both, so neither calls the
 * other back.
 */
#include "safe_backfill.h"
#include "src/locking.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/validate.h"

#include "executor/spi.h"
#include "storage/lmgr.h"
#include "access/htup_details.h"
#include "catalog/pg_constraint.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

/* NULLs left in the column, counted under a lock on the validated OID. */
int64
count_nulls(BackfillTarget *target)
{
	/* the name is read under the lock: it must still be our table's */
	LockRelationOid(target->relid, AccessShareLock);
	follow_target_rename(target);
	return run_count_query(sql_count_nulls(target), true, "NULLs");
}

typedef struct ValidateCall
{
	BackfillTarget *target;
	const char *conname;
	int			violation;
	bool		added;			/* added by this call, not the user's */
} ValidateCall;

static void
validate_action(void *arg)
{
	ValidateCall *call = (ValidateCall *) arg;
	int			rc;

	/* VALIDATE's own lock, taken on the OID first: then the name is ours */
	LockRelationOid(call->target->relid, ShareUpdateExclusiveLock);
	follow_target_rename(call->target);
	rc = SPI_execute(sql_validate_constraint(call->target, call->conname), false, 0);

	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "safe_backfill: VALIDATE failed: %s", SPI_result_code_string(rc));
}

/*
 * VALIDATE stopped by anything but a violation - a cancel, statement_timeout,
 * lock_timeout - leaves the NOT VALID constraint on the table, where it
 * checks every new write but proves nothing yet.  Say so in the error, with
 * the ways out: finish, or remove the constraint this call added (a user's
 * own is left to the user).  Runs in the outer transaction after the
 * rollback; it only formats strings, so it cannot fail in turn.
 */
static void
explain_constraint_left(ErrorData *edata, void *arg)
{
	ValidateCall *call = (ValidateCall *) arg;
	/* up to 17 a CHECK; 18's own NOT NULL constraint needs no dropping */
	bool		check = call->violation == ERRCODE_CHECK_VIOLATION;
	char	   *left;
	char	   *ways;

	left = psprintf("The NOT VALID %s constraint \"%s\"%s stays on table \"%s\": every row inserted or updated is checked against it, but column \"%s\" is not NOT NULL yet.",
					check ? "CHECK" : "NOT NULL", call->conname,
					call->added ? " added by this call" : "",
					call->target->relname, call->target->colname);
	if (call->added)
		ways = psprintf("Call safe_set_not_null again to validate it and finish: %s Or remove it: %s;",
						sql_hint_set_not_null_call(call->target, check),
						sql_drop_constraint(call->target, call->conname));
	else
		ways = psprintf("Call safe_set_not_null again to validate it and finish: %s",
						sql_hint_set_not_null_call(call->target, false));
	edata->detail = edata->detail ? psprintf("%s\n%s", edata->detail, left) : left;
	edata->hint = edata->hint ? psprintf("%s\n%s", edata->hint, ways) : ways;
}

/*
 * VALIDATE a constraint; true if it holds.  violation (check_violation for a
 * CHECK, not_null_violation for 18's NOT NULL constraint) means rows break
 * it: caught in a subtransaction so the caller can undo its own step and
 * report how many NULLs are left.  added: this call added the constraint.
 */
bool
validate_constraint(BackfillTarget *target, const char *conname, int violation,
					bool added)
{
	ValidateCall call = {target, conname, violation, added};

	return run_in_subtransaction(validate_action, &call, 0, &violation, 1,
								 explain_constraint_left);
}

/*
 * VALIDATE failed on NULLs: raise, saying what became of the constraint
 * (kind "CHECK" or "NOT NULL"): removed when this call had added it, left as
 * it was otherwise.
 */
void
report_nulls_left(BackfillTarget *target, const char *kind, const char *conname,
				  int64 nulls, bool removed)
{
	ereport(ERROR,
			(errcode(ERRCODE_NOT_NULL_VIOLATION),
			 errmsg("column \"%s\" of relation \"%s\" contains " INT64_FORMAT " null values",
					target->colname, target->relname, nulls),
			 removed ?
			 errdetail("The %s constraint could not be validated; the constraint this call added was removed and nothing else changed.",
					   kind) :
			 errdetail("The existing %s constraint \"%s\" could not be validated and was left as it was; nothing changed.",
					   kind, conname),
			 errhint("Fill them first: %s", sql_hint_backfill_call(target))));
}

/* Under the DROP's lock: is our constraint still there under that name? */
typedef struct OwnConstraint
{
	Oid			relid;
	Oid			oid;
	const char *name;
} OwnConstraint;

static bool
constraint_still_ours(void *arg)
{
	OwnConstraint *own = (OwnConstraint *) arg;
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(own->oid));
	bool		same;

	if (!HeapTupleIsValid(tup))
		return false;
	same = ((Form_pg_constraint) GETSTRUCT(tup))->conrelid == own->relid &&
		strcmp(NameStr(((Form_pg_constraint) GETSTRUCT(tup))->conname), own->name) == 0;
	ReleaseSysCache(tup);
	return same;
}

/*
 * Drop the constraint oid, named name, that a promotion found or added, only
 * if it is still that very constraint under that name when the DROP holds
 * its lock: a constraint renamed meanwhile, or dropped and replaced by
 * another of the same name, is left alone (and said so).
 */
bool
drop_constraint_if_ours(BackfillTarget *target, Oid oid, const char *name,
						const LockPolicy *policy, double *held_ms)
{
	OwnConstraint own = {target->relid, oid, name};

	if (run_guarded_exclusive_step(target, SET_NOT_NULL_PROCNAME, "DROP CONSTRAINT",
								   sql_drop_constraint, name,
								   policy, held_ms, constraint_still_ours, &own))
		return true;
	ereport(NOTICE,
			(errmsg("%s: %s: constraint \"%s\" was dropped or renamed meanwhile; left alone",
					SET_NOT_NULL_PROCNAME, target->display, name)));
	return false;
}

/*
 * locking.c
 *		Take ACCESS EXCLUSIVE without ever making other sessions queue behind
 *		us for longer than lock_timeout, retrying with backoff.
 *
 * A waiting ACCESS EXCLUSIVE request blocks every later request on the table,
 * even plain SELECTs.  So each attempt first waits for the sessions that hold
 * conflicting locks to finish (waiting on their virtual transaction ids, which
 * puts nobody behind us), bounded by a backoff; only when they are gone does
 * it join the table's lock queue, and then for at most lock_timeout.  The DDL
 * that follows takes milliseconds because it never scans the table.
 */
#include "safe_backfill.h"
#include "src/citus_nodes.h"
#include "src/locking.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/xact.h"

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

/* Longest pause between two attempts. */
#define MAX_BACKOFF_MS	10000

/* lock_timeout for the rest of the current (sub)transaction. */
void
set_local_lock_timeout(int ms)
{
	char		value[32];

	/* Citus: by a SET that also reaches the workers' sessions */
	if (citus_is_loaded())
	{
		citus_set_local_lock_timeout(ms);
		return;
	}
	snprintf(value, sizeof(value), "%d", ms);
	(void) set_config_option("lock_timeout", value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* Which errors a subtransaction absorbs (rolled back, not re-raised). */
typedef struct Absorbed
{
	const int  *codes;			/* these SQLSTATEs; NULL: any but a cancel */
	int			ncodes;
} Absorbed;

static bool
is_absorbed(const Absorbed *absorbed, ErrorData *edata)
{
	int			i;

	if (absorbed->codes == NULL)
		return edata->sqlerrcode != ERRCODE_QUERY_CANCELED &&
			edata->elevel == ERROR;
	for (i = 0; i < absorbed->ncodes; i++)
		if (edata->sqlerrcode == absorbed->codes[i])
			return true;
	return false;
}

/*
 * Run action in a subtransaction (with lock_timeout set when timeout_ms > 0).
 * True if it ran; false if it raised an error that absorbed covers, with
 * everything it did rolled back and the error in *caught (if not NULL).
 * Any other error propagates, after on_error (if given) has run in the
 * still-usable outer transaction.
 */
static bool
subtransaction(LockedAction action, void *arg, int timeout_ms,
			   const Absorbed *absorbed, FailedAction on_error, ErrorData **caught)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		ran = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (timeout_ms > 0)
			set_local_lock_timeout(timeout_ms);
		action(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ran = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (!is_absorbed(absorbed, edata))
		{
			if (on_error)
				on_error(edata, arg);
			ReThrowError(edata);
		}
		if (caught)
			*caught = edata;
		else
			FreeErrorData(edata);
	}
	PG_END_TRY();
	return ran;
}

/*
 * Run action in a subtransaction; false if it raised one of the expected
 * SQLSTATEs, with everything it did rolled back.
 */
bool
run_in_subtransaction(LockedAction action, void *arg, int timeout_ms,
					  const int *expected, int nexpected, FailedAction on_error)
{
	static const int none[1] = {0};
	Absorbed	absorbed = {expected ? expected : none, expected ? nexpected : 0};

	return subtransaction(action, arg, timeout_ms, &absorbed, on_error, NULL);
}

/*
 * Run action in a subtransaction; false if it raised any error but a cancel,
 * with everything it did rolled back and the error in *error.
 */
bool
try_in_subtransaction(LockedAction action, void *arg, ErrorData **error)
{
	Absorbed	any = {NULL, 0};

	return subtransaction(action, arg, 0, &any, NULL, error);
}

/*
 * The errors a retry can cure: a lock wait that timed out, a deadlock, and
 * a serialization failure - in READ COMMITTED, the row waited for was moved
 * to another partition by the UPDATE that held its lock ("tuple to be
 * locked was already moved to another partition"): rolled back and tried
 * again, the statement finds the row in its new partition, or a later batch
 * or the sweep does.
 */
static const int lock_errors[] = {ERRCODE_LOCK_NOT_AVAILABLE, ERRCODE_T_R_DEADLOCK_DETECTED,
ERRCODE_T_R_SERIALIZATION_FAILURE};

bool
run_with_lock_timeout(int timeout_ms, LockedAction action, void *arg,
					  FailedAction on_error)
{
	return try_with_lock_timeout(timeout_ms, action, arg, on_error, NULL);
}

/* The same; on a retryable error, that error in *caught (if not NULL). */
bool
try_with_lock_timeout(int timeout_ms, LockedAction action, void *arg,
					  FailedAction on_error, ErrorData **caught)
{
	Absorbed	absorbed = {lock_errors, lengthof(lock_errors)};

	return subtransaction(action, arg, timeout_ms, &absorbed, on_error, caught);
}

static void
wait_for_holders_action(void *arg)
{
	Oid			relid = *(Oid *) arg;
	LOCKTAG		tag;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	WaitForLockers(tag, AccessExclusiveLock, false);
}

/*
 * Wait, for at most wait_ms each, for the sessions that hold a lock
 * conflicting with ACCESS EXCLUSIVE on the table now, and only for them:
 * sessions that come later are not waited for, so a table that is never
 * idle still gets its turn (they queue behind the step for at most its
 * lock_timeout).  Here by WaitForLockers; on Citus, the sessions holding
 * locks on the table's shards on every node too, the same way.  False if
 * some are still there (those on the shards' nodes described in
 * *shard_holders; this node's are read by describe_lock_holders).
 */
static bool
wait_for_lock_holders(BackfillTarget *target, int wait_ms, char **shard_holders)
{
	*shard_holders = NULL;
	return run_with_lock_timeout(wait_ms, wait_for_holders_action, &target->relid, NULL) &&
		citus_wait_for_shard_lock_holders(target, wait_ms, shard_holders);
}

typedef struct DdlAttempt
{
	BackfillTarget *target;
	DdlBuilder	build;
	const char *conname;
	TimestampTz acquired;
	StepGuard	guard;			/* or NULL */
	void	   *guard_arg;
	bool		skipped;		/* the guard said no */
} DdlAttempt;

/*
 * The statement is built only once the lock on the OID is held, from the
 * table's name at that moment: built before, it could name another table.
 */
static void
exclusive_ddl_action(void *arg)
{
	DdlAttempt *attempt = (DdlAttempt *) arg;
	char	   *sql;
	int			rc;

	LockRelationOid(attempt->target->relid, AccessExclusiveLock);
	attempt->acquired = GetCurrentTimestamp();
	/* under the lock, so nothing can change between the check and the DDL */
	follow_target_rename(attempt->target);
	attempt->skipped = attempt->guard && !attempt->guard(attempt->guard_arg);
	if (attempt->skipped)
		return;
	sql = attempt->build(attempt->target, attempt->conname);
	rc = SPI_execute(sql, false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "safe_backfill: \"%s\" failed: %s", sql,
			 SPI_result_code_string(rc));
}

static int
backoff_ms(const LockPolicy *policy, int attempt)
{
	double		base = policy->lock_timeout_ms;
	double		jitter;
	int			i;

	for (i = 1; i < attempt && base < MAX_BACKOFF_MS; i++)
		base *= 2;
	base = Min(base, MAX_BACKOFF_MS);
	jitter = compat_random_fraction();
	return (int) Max(1.0, base * (0.75 + 0.5 * jitter));
}

/* "pid 123 (idle in transaction, transaction open 4.2 s), pid 456 (...)" */
char *
describe_lock_holders(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	StringInfoData buf;
	uint64		i;
	int			rc;

	rc = SPI_execute_with_args(sql_lock_holders(), 1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: lock holder query failed: %s",
			 SPI_result_code_string(rc));

	initStringInfo(&buf);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		appendStringInfo(&buf, "%s%s (%s, transaction open %.1f s)",
						 i > 0 ? ", " : "",
						 SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
						 strtod(SPI_getvalue(tup, desc, 3), NULL));
	}
	if (SPI_processed == 0)
		appendStringInfoString(&buf, "sessions that have finished since");
	SPI_freetuptable(SPI_tuptable);
	return buf.data;
}

/*
 * Run one DDL statement that needs ACCESS EXCLUSIVE, in its own transaction,
 * and commit it.  build makes the statement (with conname, if it takes one)
 * under the lock.  Adds the time the lock was held to *held_ms.
 */
void
run_exclusive_step(BackfillTarget *target, const char *procname,
				   const char *what, DdlBuilder build, const char *conname,
				   const LockPolicy *policy, double *held_ms)
{
	(void) run_guarded_exclusive_step(target, procname, what, build, conname, policy,
									  held_ms, NULL, NULL);
}

/*
 * The same, but once the lock is held, guard(guard_arg) decides whether the
 * statement still applies; false if it did not (nothing was run).
 */
bool
run_guarded_exclusive_step(BackfillTarget *target, const char *procname,
						   const char *what, DdlBuilder build, const char *conname,
						   const LockPolicy *policy, double *held_ms,
						   StepGuard guard, void *guard_arg)
{
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		int			wait_ms = backoff_ms(policy, attempt);
		DdlAttempt	ddl = {target, build, conname, 0, guard, guard_arg, false};
		char	   *holders;
		char	   *shard_holders = NULL;

		CHECK_FOR_INTERRUPTS();
		if (wait_for_lock_holders(target, wait_ms, &shard_holders) &&
			run_with_lock_timeout(policy->lock_timeout_ms, exclusive_ddl_action, &ddl, NULL))
		{
			commit_transaction();
			*held_ms += (double) (GetCurrentTimestamp() - ddl.acquired) / 1000.0;
			return !ddl.skipped;
		}

		/* a query: run it before ereport starts, never inside its arguments */
		holders = describe_lock_holders(target->relid);
		/* got past the local holders, stopped at the shards' */
		if (shard_holders)
			holders = psprintf("sessions on the shards' nodes: %s", shard_holders);
		if (attempt >= policy->max_attempts)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("%s: %s: could not get ACCESS EXCLUSIVE lock for %s after %d attempts",
							procname, target->display, what, attempt),
					 errdetail("Sessions holding locks on relation \"%s\": %s. Steps completed before this one are kept; calling it again resumes from here.",
							   target->relname, holders),
					 errhint("Let those sessions finish (or end them with pg_terminate_backend), or call again with a larger max_attempts or lock_timeout.")));

		ereport(NOTICE,
				(errmsg("%s: %s: %s waits for %s; attempt %d of %d",
						procname, target->display, what,
						holders, attempt,
						policy->max_attempts)));
		commit_transaction();
	}
}

/*
 * jobs.c
 *		The record of each run in safe_backfill_jobs, and resuming from it.
 *
 * The row is updated in the same transaction as every batch, so after a
 * cancel, an error or a crash it says exactly how far the committed work
 * went.  A session-level advisory lock on (table, column) marks the run as
 * alive: it keeps two runs off the same column, and the progress view calls a
 * "running" row whose lock is gone "interrupted".
 *
 * The tables are read and written as their owner (the extension's owner), so
 * callers need no privileges on them and cannot forge another run's
 * position.  That is running SQL with more privileges than the caller has,
 * so it is locked down the way contrib/amcheck locks down index checks (see
 * enter_owner_context): a security-restricted operation, in a GUC nest level
 * of its own whose search_path is "pg_catalog, pg_temp", and every statement
 * (built in sqlgen.c) names the tables with their schema and every operator
 * as OPERATOR(pg_catalog.x).  Nothing the caller can create is reachable.
 */
#include "safe_backfill.h"
#include "src/jobs.h"
#include "src/keys.h"
#include "src/settings.h"
#include "src/sqlgen.h"
#include "src/target.h"
#include "src/xact.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/pquery.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

struct BackfillJob
{
	int64		id;
	char	   *jobs_table;		/* quoted schema.safe_backfill_jobs */
	Oid			nsp;			/* the extension's schema */
	Oid			owner;
	NameData	caller;			/* the role that called, recorded as such */
	LOCKTAG		lock;
	bool		locked;
	SPIPlanPtr	record_plan;
	BackfillTarget *target;		/* its keys' types: keys cross this boundary as text */
};


static void
set_advisory_tag(LOCKTAG *tag, BackfillTarget *target)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) target->relid,
						 (uint32) target->attnum, SAFE_BACKFILL_LOCK_SPACE);
}

/*
 * The workers of a parallel run each hold this second tag in share mode for
 * their whole life.  A run takes it exclusively right after the column lock,
 * so it never starts while workers of an earlier run, whose leader is gone,
 * may still write.
 */
static void
set_workers_advisory_tag(LOCKTAG *tag, Oid relid, AttrNumber attnum)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) relid, (uint32) attnum,
						 SAFE_BACKFILL_WORKERS_LOCK_SPACE);
}

/* In a parallel worker: mark this column as being written until we exit. */
void
job_lock_as_worker(Oid relid, AttrNumber attnum)
{
	LOCKTAG		tag;

	set_workers_advisory_tag(&tag, relid, attnum);
	(void) LockAcquire(&tag, ShareLock, true, false);
}

/* Wait until no worker of an earlier run of this column is left. */
static void
wait_for_earlier_workers(BackfillTarget *target)
{
	LOCKTAG		tag;

	set_workers_advisory_tag(&tag, target->relid, target->attnum);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		ereport(NOTICE,
				(errmsg("safe_backfill: %s: waiting for the parallel workers of an earlier run to exit",
						target->display)));
		(void) LockAcquire(&tag, ExclusiveLock, true, false);
	}
	LockRelease(&tag, ExclusiveLock, true);
}


/* ---------------------------------------------------------------------
 * SQL on the jobs tables, as their owner, locked down
 * --------------------------------------------------------------------- */

typedef struct OwnerContext
{
	Oid			saved_user;
	int			saved_context;
	int			guc_nestlevel;
} OwnerContext;

/*
 * Become the tables' owner the way verify_nbtree.c's bt_index_check_internal
 * does: SECURITY_RESTRICTED_OPERATION (nothing run can change the session),
 * and a search_path in a new GUC nest level that holds only pg_catalog (and
 * pg_temp last, so temporary objects cannot shadow anything).
 */
static void
enter_owner_context(Oid owner, OwnerContext *ctx)
{
	GetUserIdAndSecContext(&ctx->saved_user, &ctx->saved_context);
	SetUserIdAndSecContext(owner, ctx->saved_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	ctx->guc_nestlevel = NewGUCNestLevel();
	/* what PostgreSQL 17's RestrictSearchPath() does, spelled out for 14-16 */
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

static void
leave_owner_context(OwnerContext *ctx)
{
	AtEOXact_GUC(false, ctx->guc_nestlevel);
	SetUserIdAndSecContext(ctx->saved_user, ctx->saved_context);
}

/*
 * Run one statement on the jobs tables as their owner.  The procedures catch
 * errors (a failed batch is recorded and the run goes on or stops cleanly),
 * and a caught error must not leave the session running as the owner: restore
 * the caller explicitly instead of relying on a transaction abort.  With
 * *plan set (or to be set, from sql), the statement is prepared once, in the
 * same context, and kept.  Returns the SPI result code; SPI_tuptable stays
 * valid for the caller to read.
 */
static int
execute_as_owner(Oid owner, const char *sql, SPIPlanPtr *plan, int nargs,
				 Oid *types, Datum *args, const char *nulls, bool read_only,
				 long count)
{
	OwnerContext ctx;
	int			rc;

	enter_owner_context(owner, &ctx);
	PG_TRY();
	{
		if (plan == NULL)
			rc = SPI_execute_with_args(sql, nargs, types, args, nulls, read_only, count);
		else
		{
			if (*plan == NULL)
			{
				SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

				if (p == NULL || SPI_keepplan(p) != 0)
					elog(ERROR, "safe_backfill: preparing \"%s\" failed", sql);
				*plan = p;
			}
			rc = SPI_execute_plan(*plan, args, nulls, read_only, count);
		}
	}
	PG_CATCH();
	{
		leave_owner_context(&ctx);
		PG_RE_THROW();
	}
	PG_END_TRY();
	leave_owner_context(&ctx);
	return rc;
}

/*
 * The same text in every session, so another session's call resumes the
 * run; NULL for an expression run, which is recorded (and matched) by the
 * expression's text as given.
 */
static char *
value_text(BackfillTarget *target)
{
	if (target->written.expression || target->change.kind != CHANGE_FILL)
		return NULL;
	return canonical_text(target->atttypid, target->written.value);
}

/* The jobs table's operation of a run. */
static const char *
operation_name(BackfillTarget *target)
{
	switch (target->change.kind)
	{
		case CHANGE_UPDATE:
			return "update";
		case CHANGE_DELETE:
			return "delete";
		default:
			return "fill";
	}
}

/* A text argument that may be NULL. */
static Datum
text_or_null(const char *text, char *null)
{
	*null = text ? ' ' : 'n';
	return text ? CStringGetTextDatum(text) : (Datum) 0;
}

/*
 * Take the run's advisory lock, or say who is already filling this column.
 * Session-level, so it survives our commits; released by job_release.
 */
static void
lock_target(BackfillJob *job, BackfillTarget *target)
{
	set_advisory_tag(&job->lock, target);
	if (LockAcquire(&job->lock, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 target->change.kind == CHANGE_FILL ?
				 errmsg("safe_backfill: %s is already being filled by another session",
						target->display) :
				 errmsg("%s: another session is already running safe_update or safe_delete on table %s",
						target->change.procname, target->display),
				 errdetail("Two runs on one column would fight over the same rows; nothing was changed."),
				 errhint("Watch it in safe_backfill_progress, or wait for it to finish.")));
	job->locked = true;
	wait_for_earlier_workers(target);
}

/*
 * Before a batch commits: this session must still hold what keeps a second
 * run off the column, the column lock (or, in a parallel worker, its share
 * of the workers' tag).  Both are session-level advisory locks, and
 * pg_advisory_unlock_all() in the expression, or in a function or trigger
 * it runs, releases them with the caller's own: then a second run could
 * start and write other values into the same rows.  Stop, so the batch
 * that released it is rolled back.
 */
void
job_require_column_lock(BackfillJob *job, BackfillTarget *target)
{
	LOCKTAG		workers_tag;

	if (job != NULL)
	{
		if (!job->locked || compat_lock_held_by_me(&job->lock, ExclusiveLock))
			return;
		/* gone: job_release must not release it again */
		job->locked = false;
	}
	else
	{
		set_workers_advisory_tag(&workers_tag, target->relid, target->attnum);
		if (compat_lock_held_by_me(&workers_tag, ShareLock))
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("safe_backfill: %s: the column's advisory lock was released while the batch ran",
					target->display),
			 errdetail("Something the batch ran released this session's advisory locks (pg_advisory_unlock_all() in the expression, a function it calls or a trigger); without the lock another run could fill the same rows. The batch was rolled back; batches committed before stay."),
			 errhint("Do not release advisory locks in the expression or the table's triggers, then call safe_backfill again to resume.")));
}

void
job_release(BackfillJob *job)
{
	if (job != NULL && job->locked)
	{
		LockRelease(&job->lock, ExclusiveLock, true);
		job->locked = false;
	}
	/* a kept plan lives until freed: one per call would add up in a session */
	if (job != NULL && job->record_plan != NULL)
	{
		SPI_freeplan(job->record_plan);
		job->record_plan = NULL;
	}
}

/*
 * The latest unfinished run of the same table, column and value (or
 * expression) by the same role, if any.  A run belongs to the role that
 * started it: another role's call records its own run.
 */
static bool
find_resumable(BackfillJob *job, BackfillTarget *target, const char *value,
			   JobPosition *pos)
{
	Oid			types[8] = {OIDOID, INT4OID, TEXTOID, TEXTOID, NAMEOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;
	bool		found = false;

	args[0] = ObjectIdGetDatum(target->relid);
	args[1] = Int32GetDatum(target->attnum);
	args[2] = text_or_null(value, &nulls[2]);
	args[3] = text_or_null(target->written.expression, &nulls[3]);
	args[4] = NameGetDatum(&job->caller);
	args[5] = CStringGetTextDatum(operation_name(target));
	args[6] = text_or_null(target->change.set_text, &nulls[6]);
	args[7] = text_or_null(target->change.where_text, &nulls[7]);
	rc = execute_as_owner(job->owner, sql_job_find_resumable(job->jobs_table), NULL,
						  8, types, args, nulls, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading %s failed", job->jobs_table);
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		keys;
		Datum		d;

		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		pos->sweeping = strcmp(SPI_getvalue(tup, desc, 2), "sweep") == 0;
		keys = SPI_getbinval(tup, desc, 3, &isnull);
		pos->key_texts = NULL;
		pos->nkeys = 0;
		if (!isnull)
			deconstruct_array(DatumGetArrayTypeP(keys), TEXTOID, -1, false,
							  TYPALIGN_INT, &pos->key_texts, NULL, &pos->nkeys);
		/* a bigint is passed by reference on 32-bit builds: read it as one */
		d = SPI_getbinval(tup, desc, 4, &isnull);
		pos->block = isnull ? 0 : DatumGetInt64(d);
		pos->has_block = !isnull;
		pos->rows_done = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		pos->by_ctid = strcmp(SPI_getvalue(tup, desc, 6), "ctid") == 0;
		found = true;
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

static void
insert_job(BackfillJob *job, BackfillTarget *target, const char *value,
		   bool by_ctid, double estimated_rows)
{
	Oid			types[13] = {OIDOID, INT4OID, TEXTOID, NAMEOID, TEXTOID, TEXTOID, INT8OID,
	NAMEOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID};
	Datum		args[13];
	char		nulls[13] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	NameData	colname;
	bool		isnull;
	int			rc;

	args[0] = ObjectIdGetDatum(target->relid);
	args[1] = Int32GetDatum(target->attnum);
	args[2] = CStringGetTextDatum(target->qualified);
	if (target->colname)
		namestrcpy(&colname, target->colname);
	args[3] = NameGetDatum(&colname);
	nulls[3] = target->colname ? ' ' : 'n';
	args[4] = text_or_null(value, &nulls[4]);
	args[5] = CStringGetTextDatum(by_ctid ? "ctid" : "key");
	args[6] = Int64GetDatum((int64) estimated_rows);
	args[7] = NameGetDatum(&job->caller);
	args[8] = text_or_null(target->written.expression, &nulls[8]);
	args[9] = CStringGetTextDatum(operation_name(target));
	args[10] = text_or_null(target->change.set_text, &nulls[10]);
	args[11] = text_or_null(target->change.where_text, &nulls[11]);
	args[12] = BoolGetDatum(target->change.dry_run);
	rc = execute_as_owner(job->owner, sql_job_insert(job->jobs_table), NULL,
						  13, types, args, nulls, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "safe_backfill: recording the run in %s failed", job->jobs_table);
	job->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

static void
claim_job(BackfillJob *job, double estimated_rows, bool by_ctid)
{
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		args[3] = {Int64GetDatum(job->id), Int64GetDatum((int64) estimated_rows),
	CStringGetTextDatum(by_ctid ? "ctid" : "key")};

	if (execute_as_owner(job->owner, sql_job_claim(job->jobs_table), NULL,
						 3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: updating %s failed", job->jobs_table);
}

/*
 * safe_backfill.job_retention: without it the table would grow by a row per
 * call forever.  Deleted when a run starts, as the table's owner like every
 * statement on it, so it needs no job of its own.
 */
static void
delete_expired_jobs(BackfillJob *job)
{
	Oid			types[1] = {FLOAT8OID};
	Datum		args[1];

	if (safe_backfill_job_retention_s <= 0)
		return;
	args[0] = Float8GetDatum((double) safe_backfill_job_retention_s);
	if (execute_as_owner(job->owner, sql_job_delete_expired(job->jobs_table), NULL,
						 1, types, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "safe_backfill: deleting the expired runs from %s failed", job->jobs_table);
}

static void execute_on_job(BackfillJob *job, const char *sql, bool read_only, int expected,
						   const char *what);
static char *ranges_table(Oid nsp);

/*
 * A recorded run with no position at all, in its main pass, without
 * parallel ranges: nothing to resume (a detached run queued by
 * safe_backfill_start, or a run stopped before its first batch).
 */
static bool
never_ran(BackfillJob *job, const JobPosition *pos)
{
	bool		has_ranges;

	if (pos->sweeping || pos->nkeys > 0 || pos->has_block || pos->rows_done > 0)
		return false;
	execute_on_job(job, sql_range_exists(ranges_table(job->nsp)), true, SPI_OK_SELECT,
				   "reading the ranges");
	has_ranges = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return !has_ranges;
}

/* Says which statement failed when reading or recording the run fails. */
static void
job_start_error_context(void *arg)
{
	BackfillTarget *target = (BackfillTarget *) arg;

	errcontext("safe_backfill: %s: starting the run (reading and recording it in safe_backfill_jobs); no row was changed",
			   target->display);
}

/*
 * Once the column is locked: resume the latest unfinished run with the same
 * value, or record a new one.
 */
static void
resume_or_record(BackfillJob *job, BackfillTarget *target, const char *value,
				 bool by_ctid, double estimated_rows, JobPosition *pos)
{
	ErrorContextCallback context;

	context.callback = job_start_error_context;
	context.arg = target;
	context.previous = error_context_stack;
	error_context_stack = &context;

	delete_expired_jobs(job);
	memset(pos, 0, sizeof(JobPosition));
	/* a dry run changes nothing, so it has nothing to resume */
	if (target->change.dry_run || !find_resumable(job, target, value, pos))
		insert_job(job, target, value, by_ctid, estimated_rows);
	else if (never_ran(job, pos))
	{
		/* a detached run's queued row: its run starts here, with either iteration */
		memset(pos, 0, sizeof(JobPosition));
		claim_job(job, estimated_rows, by_ctid);
	}
	else if (pos->by_ctid == by_ctid)
	{
		pos->resumed = true;
		claim_job(job, estimated_rows, by_ctid);
	}
	else
	{
		memset(pos, 0, sizeof(JobPosition));
		insert_job(job, target, value, by_ctid, estimated_rows);
	}
	error_context_stack = context.previous;
}

/*
 * The jobs table in the schema of the extension's function procoid, its
 * owner, and the calling role.
 */
static BackfillJob *
new_job(Oid procoid)
{
	BackfillJob *job = palloc0(sizeof(BackfillJob));
	Oid			nsp = get_func_namespace(procoid);
	Oid			jobs_relid = get_relname_relid("safe_backfill_jobs", nsp);

	if (!OidIsValid(jobs_relid))
		elog(ERROR, "safe_backfill: table safe_backfill_jobs is missing from schema \"%s\"",
			 get_namespace_name(nsp));
	job->jobs_table = quote_qualified_identifier(get_namespace_name(nsp), "safe_backfill_jobs");
	job->nsp = nsp;
	job->owner = relation_owner(jobs_relid);
	namestrcpy(&job->caller, GetUserNameFromId(GetUserId(), false));
	return job;
}

/*
 * Start a run: lock the column, then resume the latest unfinished run with
 * the same value, or record a new one.  pos says where to resume.  The lock
 * is a session lock, which no abort releases, and the caller has no job to
 * release it with until we return: whatever stops the start after the lock
 * (a lock_timeout or statement_timeout on the jobs table, a cancel while
 * waiting for an earlier run's workers) releases it here, or the session
 * would keep the column from every other session until it disconnects.
 */
BackfillJob *
job_start(BackfillTarget *target, Oid procoid, bool by_ctid,
		  double estimated_rows, JobPosition *pos)
{
	BackfillJob *job = new_job(procoid);
	/* the value's output function runs as the caller, before any switch */
	char	   *value = value_text(target);

	job->target = target;
	PG_TRY();
	{
		lock_target(job, target);
		resume_or_record(job, target, value, by_ctid, estimated_rows, pos);
	}
	PG_CATCH();
	{
		job_release(job);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return job;
}

/*
 * The last key a resumed serial run recorded, read back with the primary
 * key's current types (an error if they no longer read it); NULL if it
 * recorded none, or one of another number of columns.
 */
Datum *
job_saved_key(BackfillJob *job, const JobPosition *pos)
{
	Datum	   *key;

	if (pos->key_texts == NULL || pos->nkeys != job->target->nkeys)
		return NULL;
	key = palloc(sizeof(Datum) * pos->nkeys);
	canonical_key_parse(job->target, pos->key_texts, key);
	return key;
}

int64
job_id(BackfillJob *job)
{
	return job->id;
}

/*
 * safe_backfill_forget: delete the calling role's runs that finished at
 * least older_than ago, on relid (or any table if invalid); how many.  As
 * the jobs table's owner, locked down like every statement on it: the role
 * need not (and cannot) touch the table itself, and only its own runs go.
 */
int64
jobs_forget_finished(Oid procoid, Oid relid, Interval *older_than)
{
	BackfillJob *job = new_job(procoid);
	Oid			types[3] = {NAMEOID, OIDOID, INTERVALOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	int64		deleted;

	args[0] = NameGetDatum(&job->caller);
	args[1] = ObjectIdGetDatum(relid);
	nulls[1] = OidIsValid(relid) ? ' ' : 'n';
	args[2] = IntervalPGetDatum(older_than);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill: SPI_connect failed");
	if (execute_as_owner(job->owner, sql_job_forget_finished(job->jobs_table), NULL,
						 3, types, args, nulls, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "safe_backfill: deleting runs from %s failed", job->jobs_table);
	deleted = (int64) SPI_processed;
	SPI_finish();
	return deleted;
}

/*
 * In the batch's own transaction: how far the committed work will have gone.
 * keys (text of the last key, or NULL) and block (or InvalidBlockNumber)
 * give the position to resume after.
 */
void
job_record_batch(BackfillJob *job, const char *phase, Datum *key,
				 BlockNumber block, int64 filled, int64 scanned, int64 batches)
{
	ArrayType  *keys;

	Oid			types[7] = {INT8OID, TEXTOID, TEXTARRAYOID, INT8OID, INT8OID, INT8OID, INT8OID};
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (job == NULL)
		return;					/* a parallel worker: the leader keeps the record */
	keys = key ? canonical_key_array(job->target, key) : NULL;
	args[0] = Int64GetDatum(job->id);
	args[1] = CStringGetTextDatum(phase);
	args[2] = PointerGetDatum(keys);
	nulls[2] = keys ? ' ' : 'n';
	args[3] = Int64GetDatum((int64) block);
	nulls[3] = BlockNumberIsValid(block) ? ' ' : 'n';
	args[4] = Int64GetDatum(filled);
	args[5] = Int64GetDatum(scanned);
	args[6] = Int64GetDatum(batches);

	if (execute_as_owner(job->owner,
						 job->record_plan ? NULL : sql_job_record_batch(job->jobs_table),
						 &job->record_plan,
						 7, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the batch failed");
}


/*
 * Run sql, whose one parameter $1 is the job's id, as the jobs tables'
 * owner; an error saying what failed unless it returns expected.  A query's
 * rows are left in SPI_tuptable.
 */
static void
execute_on_job(BackfillJob *job, const char *sql, bool read_only, int expected,
			   const char *what)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(job->id)};

	if (execute_as_owner(job->owner, sql, NULL, 1, types, args, NULL, read_only, 0) != expected)
		elog(ERROR, "safe_backfill: %s of run " INT64_FORMAT " failed", what, job->id);
}

/*
 * While the job is in its parallel main pass, its rows_done, rows_scanned
 * and batches are the sums of what its ranges' batches committed (each in
 * the worker's batch transaction): set them so.  Every path that reads or
 * ends a parallel pass calls this (the leader's progress, the end of the
 * pass, a resume, the end of the run), so the job row is exact whenever the
 * pass is not running, whatever stopped it: the leader's own records, about
 * once a second, lag behind the workers and a crash can come in between.
 * Returns the job's rows_done, or -1 when it is not in a parallel main pass
 * (nothing changed).
 */
int64
job_count_ranges(BackfillJob *job)
{
	int64		rows_done = -1;
	bool		isnull;

	execute_on_job(job, sql_job_count_ranges(job->jobs_table, ranges_table(job->nsp)),
				   false, SPI_OK_UPDATE_RETURNING, "counting the ranges");
	if (SPI_processed == 1)
		rows_done = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return rows_done;
}

/*
 * The job was just split into ranges: they take over its counts (see
 * job_count_ranges), the lowest one starting with what the job had counted.
 */
void
job_ranges_take_counts(BackfillJob *job)
{
	execute_on_job(job, sql_range_take_job_counts(job->jobs_table, ranges_table(job->nsp)),
				   false, SPI_OK_UPDATE, "recording the ranges");
}

/*
 * The main pass goes on in this session after all (no worker could start):
 * the job row takes back its counts and the ranges go, so the job is a
 * serial one again, for this call and for a resume.
 */
void
job_drop_ranges(BackfillJob *job)
{
	(void) job_count_ranges(job);
	execute_on_job(job, sql_range_delete(ranges_table(job->nsp)), false, SPI_OK_DELETE,
				   "deleting the ranges");
}

/*
 * The run ended: done, or failed with the error that stopped it.  A failed
 * parallel main pass counts what its ranges committed.
 */
void
job_finish(BackfillJob *job, const char *error)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = {' ', ' '};

	if (job == NULL)
		return;
	(void) job_count_ranges(job);
	args[0] = Int64GetDatum(job->id);
	args[1] = error ? CStringGetTextDatum(error) : (Datum) 0;
	nulls[1] = error ? ' ' : 'n';
	if (execute_as_owner(job->owner, sql_job_finish(job->jobs_table), NULL,
						 2, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the end of the run failed");
}

/* ---------------------------------------------------------------------
 * The ranges of a parallel run, one row each in safe_backfill_job_ranges
 * --------------------------------------------------------------------- */

static char *
ranges_table(Oid nsp)
{
	return quote_qualified_identifier(get_namespace_name(nsp), "safe_backfill_job_ranges");
}

static Datum
key_array_datum(BackfillTarget *target, Datum *key, char *null)
{
	*null = key ? ' ' : 'n';
	return key ? PointerGetDatum(canonical_key_array(target, key)) : (Datum) 0;
}

void
job_insert_range(BackfillJob *job, int range_no, Datum *start_key,
				 Datum *end_key, BlockNumber start_block, BlockNumber end_block)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, INT8OID, INT8OID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int64GetDatum(job->id);
	args[1] = Int32GetDatum(range_no);
	args[2] = key_array_datum(job->target, start_key, &nulls[2]);
	args[3] = key_array_datum(job->target, end_key, &nulls[3]);
	args[4] = Int64GetDatum((int64) start_block);
	args[5] = Int64GetDatum((int64) end_block);
	nulls[5] = BlockNumberIsValid(end_block) ? ' ' : 'n';
	if (execute_as_owner(job->owner, sql_range_insert(ranges_table(job->nsp)), NULL,
						 6, types, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "safe_backfill: recording the ranges failed");
}

/*
 * A Citus run's range: one shard, by its id (a bigint, which range_no
 * could not hold); range_no is its ordinal in the run.
 */
void
job_insert_shard_range(BackfillJob *job, int range_no, int64 shard_id)
{
	Oid			types[3] = {INT8OID, INT4OID, INT8OID};
	Datum		args[3];

	args[0] = Int64GetDatum(job->id);
	args[1] = Int32GetDatum(range_no);
	args[2] = Int64GetDatum(shard_id);
	if (execute_as_owner(job->owner, sql_range_insert_shard(ranges_table(job->nsp)), NULL,
						 3, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "safe_backfill: recording the shards failed");
}

/* Whether this job ran in parallel ranges at all (finished or not). */
bool
job_has_ranges(BackfillJob *job)
{
	bool		found;

	execute_on_job(job, sql_range_exists(ranges_table(job->nsp)), true, SPI_OK_SELECT,
				   "reading the ranges");
	found = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * A range's saved key (canonical text[]) read back with the primary key's
 * current types; an error that names the range if it no longer fits.
 */
static Datum *
saved_range_key(BackfillJob *job, int range_no, Datum array)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *key = NULL;

	PG_TRY();
	{
		key = canonical_key_from_array(job->target, DatumGetArrayTypeP(array));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->message = psprintf("the saved key of parallel range %d no longer fits the primary key: %s",
								  range_no, edata->message);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return key;
}

/*
 * The unfinished ranges of this job, in order; how many.  Their keys are
 * read back with the key's current types: an error if one no longer fits.
 */
int
job_load_ranges(BackfillJob *job, JobRange **ranges)
{
	uint64		i;
	int			rc;

	execute_on_job(job, sql_range_load_unfinished(ranges_table(job->nsp)), true, SPI_OK_SELECT,
				   "reading the ranges");
	*ranges = palloc0(sizeof(JobRange) * Max(1, SPI_processed));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		(*ranges)[i].range_no = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		(*ranges)[i].start_key = isnull ? NULL : saved_range_key(job, (*ranges)[i].range_no, d);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		(*ranges)[i].end_key = isnull ? NULL : saved_range_key(job, (*ranges)[i].range_no, d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		(*ranges)[i].next_block = isnull ? 0 : (BlockNumber) DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		(*ranges)[i].end_block = isnull ? InvalidBlockNumber : (BlockNumber) DatumGetInt64(d);
		(*ranges)[i].shard_id = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	}
	rc = (int) SPI_processed;
	SPI_freetuptable(SPI_tuptable);
	return rc;
}

struct RangeRecorder
{
	Oid			owner;
	char	   *table;
	int64		job_id;
	int			range_no;
	SPIPlanPtr	plan;
	BackfillTarget *target;		/* its keys' types */
};

/*
 * For a worker: where to record its range's progress, as the jobs' owner.
 * The worker's session has its role's default search_path, which that role
 * chooses: the updates are locked down exactly like the leader's.
 */
RangeRecorder *
range_recorder(BackfillTarget *target, Oid nsp, int64 job_id, int range_no)
{
	RangeRecorder *r = palloc0(sizeof(RangeRecorder));
	Oid			relid = get_relname_relid("safe_backfill_job_ranges", nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "safe_backfill: table safe_backfill_job_ranges is missing");
	r->owner = relation_owner(relid);
	r->table = ranges_table(nsp);
	r->job_id = job_id;
	r->range_no = range_no;
	r->target = target;
	return r;
}

static void
range_update(RangeRecorder *r, Datum *key, BlockNumber block, int64 filled, bool done,
			 int64 scanned, int64 batches)
{
	ArrayType  *keys = key ? canonical_key_array(r->target, key) : NULL;

	Oid			types[8] = {INT8OID, INT4OID, TEXTARRAYOID, INT8OID, INT8OID, BOOLOID, INT8OID, INT8OID};
	Datum		args[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int64GetDatum(r->job_id);
	args[1] = Int32GetDatum(r->range_no);
	args[2] = PointerGetDatum(keys);
	nulls[2] = keys ? ' ' : 'n';
	args[3] = Int64GetDatum((int64) block);
	nulls[3] = BlockNumberIsValid(block) ? ' ' : 'n';
	args[4] = Int64GetDatum(filled);
	args[5] = BoolGetDatum(done);
	args[6] = Int64GetDatum(scanned);
	args[7] = Int64GetDatum(batches);

	if (execute_as_owner(r->owner, r->plan ? NULL : sql_range_update(r->table), &r->plan,
						 8, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the range failed");
}

/* In the batch's own transaction, like job_record_batch. */
void
range_record_batch(RangeRecorder *r, Datum *key, BlockNumber block, int64 filled,
				   int64 scanned, int64 batches)
{
	range_update(r, key, block, filled, false, scanned, batches);
}

/*
 * The range's last record: its kept plan goes with it.  Otherwise every
 * range leaves one in the session that recorded it (a Citus run's caller:
 * one per shard; a parallel worker: one per range it took).
 */
void
range_record_done(RangeRecorder *r)
{
	range_update(r, NULL, InvalidBlockNumber, 0, true, 0, 0);
	if (r->plan)
		SPI_freeplan(r->plan);
	r->plan = NULL;
}

/*
 * Start this run over from the beginning of the table: its saved position
 * (and its parallel ranges) can no longer be used, or the caller asked for
 * it (resume => false).  Filling only NULLs keeps this correct: rows done
 * before are read again, not written.
 */
void
job_forget_position(BackfillJob *job)
{
	execute_on_job(job, sql_job_forget_position(job->jobs_table), false, SPI_OK_UPDATE,
				   "resetting the position");
	execute_on_job(job, sql_range_delete(ranges_table(job->nsp)), false, SPI_OK_DELETE,
				   "resetting the position");
}

/*
 * Whatever stops the run once its job row exists (a batch, the sweep limit,
 * a table or column changed, the replica wait, a parallel worker, a cancel)
 * ends it as failed, with the error's message: roll back what the error
 * interrupted, record the failure in a transaction of its own and commit it.
 * The caller raises the error again.  Only FATAL errors and crashes, which
 * end the session, leave the row "running" (shown as interrupted).
 */
static void
record_failure(BackfillJob *job, ErrorData *edata)
{
	FlushErrorState();
	/*
	 * The error may have left snapshots pushed by a statement of ours that
	 * was running.  SPI_rollback expects none but the portal's (which SPI
	 * pushes after a commit): pop the others.
	 */
	while (ActiveSnapshotSet() &&
		   (ActivePortal == NULL || GetActiveSnapshot() != ActivePortal->portalSnapshot))
		PopActiveSnapshot();
	SPI_rollback();
	job_finish(job, edata->message);
	commit_transaction();
}

/*
 * Record the failure, release the column on any outcome, raise the error.
 * A cancel that arrives while the failure is recorded (a second Ctrl-C, a
 * statement_timeout behind a cancel) waits until the record is committed:
 * otherwise it cancels the record itself, the job stays "running" without
 * its error and the error that stopped the run is lost.  The pending cancel
 * is then discarded with the error we raise.  Only cancels are held: a
 * terminate still ends the session.
 */
static void
record_failure_and_rethrow(BackfillJob *job, ErrorData *edata)
{
	HOLD_CANCEL_INTERRUPTS();
	PG_TRY();
	{
		record_failure(job, edata);
	}
	PG_FINALLY();
	{
		RESUME_CANCEL_INTERRUPTS();
		job_release(job);
	}
	PG_END_TRY();
	ReThrowError(edata);
}

/*
 * Rolling back from here is possible only in our own procedure's SPI
 * connection, outside any subtransaction (every subtransaction we start
 * cleans up after itself, so this holds for our errors).
 */
static bool
can_record_failure(BackfillJob *job)
{
	return job != NULL && !IsSubTransaction() && SPI_inside_nonatomic_context();
}

/*
 * Start the column's job (or claim the unfinished one it resumes) and run
 * body in it; a failure is recorded in the job before the error goes on,
 * and the job's advisory lock (a session lock) is released on every exit.
 */
void
run_in_job(BackfillTarget *target, const BackfillOptions *opts, bool by_ctid,
		   double estimated_rows, JobBody body, void *arg)
{
	BackfillJob *volatile job = NULL;
	JobPosition pos;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		job = job_start(target, opts->procoid, by_ctid, estimated_rows, &pos);
		commit_transaction();
		body(job, &pos, arg);
	}
	PG_CATCH();
	{
		if (can_record_failure(job))
		{
			MemoryContextSwitchTo(cxt);
			record_failure_and_rethrow(job, CopyErrorData());
		}
		job_release(job);
		PG_RE_THROW();
	}
	PG_END_TRY();
	job_release(job);
}

/* ---------------------------------------------------------------------
 * Detached runs: the job row queued by safe_backfill_start, with its
 * arguments, role and settings in safe_backfill_detached, for the worker
 * that runs it (now, or after a restart) to read back.  As the tables'
 * owner, locked down, like every statement on them.
 * --------------------------------------------------------------------- */

static char *
detached_table(Oid nsp)
{
	return quote_qualified_identifier(get_namespace_name(nsp), "safe_backfill_detached");
}

/* The lock a detached run's worker holds for its whole life. */
void
set_detached_lock_tag(LOCKTAG *tag, int64 id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (((uint64) id) >> 32),
						 (uint32) id, SAFE_BACKFILL_DETACHED_LOCK_SPACE);
}

/* A second detached run on a column where one is queued or any run works. */
static void
refuse_busy_column(BackfillJob *job, BackfillTarget *target)
{
	Oid			types[2] = {OIDOID, INT4OID};
	Datum		args[2] = {ObjectIdGetDatum(target->relid), Int32GetDatum(target->attnum)};
	int64		busy;
	bool		isnull;

	if (execute_as_owner(job->owner, sql_detached_busy(job->jobs_table, detached_table(job->nsp)),
						 NULL, 2, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading %s failed", job->jobs_table);
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return;
	}
	busy = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("safe_backfill_start: %s is already being filled by run " INT64_FORMAT,
					target->display, busy),
			 errdetail("Two runs on one column would fight over the same rows; nothing was started."),
			 errhint("Wait for it with CALL safe_backfill_wait(" INT64_FORMAT "), or stop it with SELECT safe_backfill_cancel(" INT64_FORMAT ").",
					 busy, busy)));
}

/*
 * safe_backfill_start: queue the run in the caller's transaction (the row
 * is seen, and the worker runs it, only once the caller commits).  With
 * resume, the column's latest unfinished run with the same value (or
 * expression) by the same role is queued again, keeping its position;
 * otherwise a new run is recorded.  Returns the run's id.
 */
int64
job_enqueue_detached(BackfillTarget *target, const DetachedRun *run)
{
	BackfillJob *job = new_job(run->opts.procoid);
	char	   *value = value_text(target);
	JobPosition pos;
	Oid			types[11] = {INT8OID, OIDOID, OIDOID, INT4OID, INT4OID, BOOLOID, INT4OID,
	INT4OID, INT4OID, BOOLOID, TEXTARRAYOID};
	Datum		args[11];

	refuse_busy_column(job, target);
	memset(&pos, 0, sizeof(JobPosition));
	if (run->opts.resume && find_resumable(job, target, value, &pos))
		execute_on_job(job, sql_job_requeue(job->jobs_table), false, SPI_OK_UPDATE,
					   "queuing");
	else
	{
		Oid			itypes[9] = {OIDOID, INT4OID, TEXTOID, NAMEOID, TEXTOID, TEXTOID, INT8OID, NAMEOID, TEXTOID};
		Datum		iargs[9];
		char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		NameData	colname;
		bool		isnull;

		namestrcpy(&colname, target->colname);
		iargs[0] = ObjectIdGetDatum(target->relid);
		iargs[1] = Int32GetDatum(target->attnum);
		iargs[2] = CStringGetTextDatum(target->qualified);
		iargs[3] = NameGetDatum(&colname);
		iargs[4] = text_or_null(value, &nulls[4]);
		/* the worker's run sets the iteration it chooses (resume_or_record) */
		iargs[5] = CStringGetTextDatum(target->nkeys > 0 ? "key" : "ctid");
		iargs[6] = Int64GetDatum((int64) estimate_table_rows(target->relid));
		iargs[7] = NameGetDatum(&job->caller);
		iargs[8] = text_or_null(target->written.expression, &nulls[8]);
		if (execute_as_owner(job->owner, sql_job_insert_queued(job->jobs_table), NULL,
							 9, itypes, iargs, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
			SPI_processed != 1)
			elog(ERROR, "safe_backfill: recording the run in %s failed", job->jobs_table);
		job->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
		SPI_freetuptable(SPI_tuptable);
	}

	args[0] = Int64GetDatum(job->id);
	args[1] = ObjectIdGetDatum(run->session_role);
	args[2] = ObjectIdGetDatum(run->run_role);
	args[3] = Int32GetDatum(run->opts.batch_size);
	args[4] = Int32GetDatum(run->opts.pause_ms);
	args[5] = BoolGetDatum(run->opts.set_not_null);
	args[6] = Int32GetDatum(run->opts.target_batch_ms);
	args[7] = Int32GetDatum(run->opts.max_replica_lag_ms);
	args[8] = Int32GetDatum(run->opts.workers);
	args[9] = BoolGetDatum(run->opts.resume);
	args[10] = run->settings;
	if (execute_as_owner(job->owner, sql_detached_upsert(detached_table(job->nsp)), NULL,
						 11, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "safe_backfill: recording the detached run failed");
	return job->id;
}

/* The detached run id as recorded; false when there is none by that id. */
bool
job_load_detached(Oid procoid, int64 id, DetachedRun *run)
{
	BackfillJob *job = new_job(procoid);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	job->id = id;
	memset(run, 0, sizeof(DetachedRun));
	execute_on_job(job, sql_detached_load(job->jobs_table, detached_table(job->nsp)), true,
				   SPI_OK_SELECT, "reading the detached run");
	if (SPI_processed != 1)
	{
		SPI_freetuptable(SPI_tuptable);
		return false;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	run->id = id;
	run->state = SPI_getvalue(tup, desc, 1);
	run->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	run->colname = SPI_getvalue(tup, desc, 3);
	run->value_text = SPI_getvalue(tup, desc, 4);
	run->expression = SPI_getvalue(tup, desc, 5);
	run->rows_done = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);
	run->rows_estimated = isnull ? 0 : DatumGetInt64(d);
	run->error = SPI_getvalue(tup, desc, 8);
	d = SPI_getbinval(tup, desc, 9, &isnull);
	run->pid = isnull ? 0 : DatumGetInt32(d);
	run->session_role = DatumGetObjectId(SPI_getbinval(tup, desc, 10, &isnull));
	run->run_role = DatumGetObjectId(SPI_getbinval(tup, desc, 11, &isnull));
	run->opts.batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 12, &isnull));
	run->opts.pause_ms = DatumGetInt32(SPI_getbinval(tup, desc, 13, &isnull));
	run->opts.set_not_null = DatumGetBool(SPI_getbinval(tup, desc, 14, &isnull));
	run->opts.target_batch_ms = DatumGetInt32(SPI_getbinval(tup, desc, 15, &isnull));
	run->opts.max_replica_lag_ms = DatumGetInt32(SPI_getbinval(tup, desc, 16, &isnull));
	run->opts.workers = DatumGetInt32(SPI_getbinval(tup, desc, 17, &isnull));
	run->opts.resume = DatumGetBool(SPI_getbinval(tup, desc, 18, &isnull));
	run->opts.procoid = procoid;
	run->settings = SPI_datumTransfer(SPI_getbinval(tup, desc, 19, &isnull), false, -1);
	run->cancel_requested = DatumGetBool(SPI_getbinval(tup, desc, 20, &isnull));
	run->sqlstate = SPI_getvalue(tup, desc, 21);
	run->alive = DatumGetBool(SPI_getbinval(tup, desc, 22, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/* The worker takes its run; false when it is no longer queued or running (cancelled). */
bool
job_claim_detached(Oid procoid, int64 id)
{
	BackfillJob *job = new_job(procoid);
	bool		claimed;

	job->id = id;
	execute_on_job(job, sql_detached_claim(job->jobs_table), false,
				   SPI_OK_UPDATE_RETURNING, "claiming the detached run");
	claimed = SPI_processed == 1;
	SPI_freetuptable(SPI_tuptable);
	return claimed;
}

/* The worker's last record of its run: done (error NULL), failed or cancelled. */
void
job_end_detached(Oid procoid, int64 id, const char *error, const char *sqlstate)
{
	BackfillJob *job = new_job(procoid);
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};

	args[0] = Int64GetDatum(id);
	args[1] = text_or_null(error, &nulls[1]);
	args[2] = text_or_null(sqlstate, &nulls[2]);
	if (execute_as_owner(job->owner, sql_detached_end(job->jobs_table, detached_table(job->nsp)),
						 NULL, 3, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the end of detached run " INT64_FORMAT " failed", id);
}

/*
 * safe_backfill_cancel: mark the run as asked to stop, and cancel it at once
 * if no process works on it (queued, or interrupted); true if it did.
 */
bool
job_cancel_idle_detached(Oid procoid, int64 id)
{
	BackfillJob *job = new_job(procoid);
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	bool		cancelled;

	job->id = id;
	execute_on_job(job, sql_detached_request_cancel(detached_table(job->nsp)), false,
				   SPI_OK_UPDATE, "cancelling");
	args[0] = Int64GetDatum(id);
	args[1] = CStringGetTextDatum("cancelled by safe_backfill_cancel");
	if (execute_as_owner(job->owner, sql_detached_cancel_idle(job->jobs_table), NULL,
						 2, types, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "safe_backfill: cancelling run " INT64_FORMAT " failed", id);
	cancelled = SPI_processed == 1;
	SPI_freetuptable(SPI_tuptable);
	return cancelled;
}

/*
 * The detached runs that no process works on (after a restart): a list of
 * DetachedRun with id, session_role and run_role set.
 */
List *
jobs_detached_to_resume(Oid procoid)
{
	BackfillJob *job = new_job(procoid);
	List	   *runs = NIL;
	uint64		i;

	if (execute_as_owner(job->owner, sql_detached_to_resume(job->jobs_table, detached_table(job->nsp)),
						 NULL, 0, NULL, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading the detached runs failed");
	for (i = 0; i < SPI_processed; i++)
	{
		DetachedRun *run = palloc0(sizeof(DetachedRun));
		bool		isnull;

		run->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		run->session_role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		run->run_role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
		runs = lappend(runs, run);
	}
	SPI_freetuptable(SPI_tuptable);
	return runs;
}

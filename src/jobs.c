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
 * The table is written as its owner (the extension's owner), so callers need
 * no privileges on it and cannot forge another run's position.
 */
#include "safe_backfill.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

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
};

static void
set_advisory_tag(LOCKTAG *tag, BackfillTarget *target)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) target->relid,
						 (uint32) target->attnum, 2);
}

/* Run SPI work on the jobs table as its owner. */
typedef struct AsOwner
{
	Oid			saved_user;
	int			saved_context;
} AsOwner;

static void
become_owner(BackfillJob *job, AsOwner *saved)
{
	GetUserIdAndSecContext(&saved->saved_user, &saved->saved_context);
	SetUserIdAndSecContext(job->owner, saved->saved_context | SECURITY_LOCAL_USERID_CHANGE);
}

static void
restore_user(AsOwner *saved)
{
	SetUserIdAndSecContext(saved->saved_user, saved->saved_context);
}

static char *
value_text(BackfillTarget *target)
{
	Oid			outfunc;
	bool		isvarlena;

	getTypeOutputInfo(target->atttypid, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, target->value);
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
				 errmsg("safe_backfill: %s is already being filled by another session",
						target->display),
				 errdetail("Two runs on one column would fight over the same rows; nothing was changed."),
				 errhint("Watch it in safe_backfill_progress, or wait for it to finish.")));
	job->locked = true;
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

/* The latest unfinished run of the same table, column and value, if any. */
static bool
find_resumable(BackfillJob *job, BackfillTarget *target, const char *value,
			   JobPosition *pos)
{
	Oid			types[3] = {OIDOID, INT4OID, TEXTOID};
	Datum		args[3];
	char	   *sql;
	int			rc;
	bool		found = false;

	args[0] = ObjectIdGetDatum(target->relid);
	args[1] = Int32GetDatum(target->attnum);
	args[2] = CStringGetTextDatum(value);
	sql = psprintf("SELECT id, phase, last_key, last_block, rows_done, iteration"
				   " FROM %s WHERE relid = $1 AND attnum = $2 AND value_text = $3"
				   " AND state <> 'done' ORDER BY id DESC LIMIT 1", job->jobs_table);
	rc = SPI_execute_with_args(sql, 3, types, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading %s failed", job->jobs_table);
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		keys;

		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		pos->sweeping = strcmp(SPI_getvalue(tup, desc, 2), "sweep") == 0;
		keys = SPI_getbinval(tup, desc, 3, &isnull);
		pos->keys = NULL;
		pos->nkeys = 0;
		if (!isnull)
			deconstruct_array(DatumGetArrayTypeP(keys), TEXTOID, -1, false,
							  TYPALIGN_INT, &pos->keys, NULL, &pos->nkeys);
		pos->block = SPI_getbinval(tup, desc, 4, &isnull);
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
	Oid			types[8] = {OIDOID, INT4OID, TEXTOID, NAMEOID, TEXTOID, TEXTOID, INT8OID, NAMEOID};
	Datum		args[8];
	NameData	colname;
	bool		isnull;
	int			rc;

	namestrcpy(&colname, target->colname);
	args[0] = ObjectIdGetDatum(target->relid);
	args[1] = Int32GetDatum(target->attnum);
	args[2] = CStringGetTextDatum(target->qualified);
	args[3] = NameGetDatum(&colname);
	args[4] = CStringGetTextDatum(value);
	args[5] = CStringGetTextDatum(by_ctid ? "ctid" : "key");
	args[6] = Int64GetDatum((int64) estimated_rows);
	args[7] = NameGetDatum(&job->caller);
	rc = SPI_execute_with_args(psprintf("INSERT INTO %s (relid, attnum, table_name, column_name,"
										" value_text, iteration, rows_estimated, pid, username)"
										" VALUES ($1, $2, $3, $4, $5, $6, $7, pg_catalog.pg_backend_pid(),"
										" $8) RETURNING id",
										job->jobs_table),
							   8, types, args, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "safe_backfill: recording the run in %s failed", job->jobs_table);
	job->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

static void
claim_job(BackfillJob *job, double estimated_rows)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		args[2] = {Int64GetDatum(job->id), Int64GetDatum((int64) estimated_rows)};

	if (SPI_execute_with_args(psprintf("UPDATE %s SET state = 'running', error = NULL,"
									   " pid = pg_catalog.pg_backend_pid(), rows_estimated = $2,"
									   " updated_at = pg_catalog.clock_timestamp() WHERE id = $1",
									   job->jobs_table),
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: updating %s failed", job->jobs_table);
}

/*
 * Start a run: lock the column, then resume the latest unfinished run with
 * the same value, or record a new one.  pos says where to resume.
 */
BackfillJob *
job_start(BackfillTarget *target, Oid procoid, bool by_ctid,
		  double estimated_rows, JobPosition *pos)
{
	BackfillJob *job = palloc0(sizeof(BackfillJob));
	Oid			nsp = get_func_namespace(procoid);
	Oid			jobs_relid = get_relname_relid("safe_backfill_jobs", nsp);
	char	   *value = value_text(target);
	AsOwner		saved;
	HeapTuple	tup;

	if (!OidIsValid(jobs_relid))
		elog(ERROR, "safe_backfill: table safe_backfill_jobs is missing from schema \"%s\"",
			 get_namespace_name(nsp));
	job->jobs_table = quote_qualified_identifier(get_namespace_name(nsp), "safe_backfill_jobs");
	job->nsp = nsp;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(jobs_relid));
	job->owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	namestrcpy(&job->caller, GetUserNameFromId(GetUserId(), false));
	lock_target(job, target);
	memset(pos, 0, sizeof(JobPosition));
	become_owner(job, &saved);
	if (find_resumable(job, target, value, pos) && pos->by_ctid == by_ctid)
	{
		pos->resumed = true;
		claim_job(job, estimated_rows);
	}
	else
	{
		memset(pos, 0, sizeof(JobPosition));
		insert_job(job, target, value, by_ctid, estimated_rows);
	}
	restore_user(&saved);
	return job;
}

int64
job_id(BackfillJob *job)
{
	return job->id;
}

/*
 * In the batch's own transaction: how far the committed work will have gone.
 * keys (text of the last key, or NULL) and block (or InvalidBlockNumber)
 * give the position to resume after.
 */
void
job_record_batch(BackfillJob *job, const char *phase, ArrayType *keys,
				 BlockNumber block, int64 filled, int64 scanned)
{
	Oid			types[6] = {INT8OID, TEXTOID, TEXTARRAYOID, INT8OID, INT8OID, INT8OID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	AsOwner		saved;

	if (job == NULL)
		return;					/* a parallel worker: the leader keeps the record */
	if (job->record_plan == NULL)
	{
		job->record_plan = SPI_prepare(psprintf("UPDATE %s SET phase = $2,"
												" last_key = coalesce($3, last_key),"
												" last_block = $4,"
												" rows_done = rows_done + $5,"
												" rows_scanned = rows_scanned + $6,"
												" batches = batches + 1,"
												" updated_at = pg_catalog.clock_timestamp()"
												" WHERE id = $1", job->jobs_table),
									   6, types);
		if (job->record_plan == NULL || SPI_keepplan(job->record_plan) != 0)
			elog(ERROR, "safe_backfill: preparing the job update failed");
	}
	args[0] = Int64GetDatum(job->id);
	args[1] = CStringGetTextDatum(phase);
	args[2] = PointerGetDatum(keys);
	nulls[2] = keys ? ' ' : 'n';
	args[3] = Int64GetDatum((int64) block);
	nulls[3] = BlockNumberIsValid(block) ? ' ' : 'n';
	args[4] = Int64GetDatum(filled);
	args[5] = Int64GetDatum(scanned);

	become_owner(job, &saved);
	if (SPI_execute_plan(job->record_plan, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the batch failed");
	restore_user(&saved);
}

/* The run ended: done, or failed with the error that stopped it. */
void
job_finish(BackfillJob *job, const char *error)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = {' ', ' '};
	AsOwner		saved;

	if (job == NULL)
		return;
	args[0] = Int64GetDatum(job->id);
	args[1] = error ? CStringGetTextDatum(error) : (Datum) 0;
	nulls[1] = error ? ' ' : 'n';
	become_owner(job, &saved);
	if (SPI_execute_with_args(psprintf("UPDATE %s SET state = CASE WHEN $2 IS NULL THEN 'done' ELSE 'failed' END,"
									   " phase = CASE WHEN $2 IS NULL THEN 'done' ELSE phase END,"
									   " error = $2, finished_at = pg_catalog.clock_timestamp(),"
									   " updated_at = pg_catalog.clock_timestamp() WHERE id = $1",
									   job->jobs_table),
							  2, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the end of the run failed");
	restore_user(&saved);
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
key_literal_datum(const char *literal, char *null)
{
	*null = literal ? ' ' : 'n';
	return literal ? OidInputFunctionCall(F_ARRAY_IN, (char *) literal, TEXTOID, -1) : (Datum) 0;
}

void
job_insert_range(BackfillJob *job, int range_no, const char *start_key,
				 const char *end_key, BlockNumber start_block, BlockNumber end_block)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, INT8OID, INT8OID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	AsOwner		saved;

	args[0] = Int64GetDatum(job->id);
	args[1] = Int32GetDatum(range_no);
	args[2] = key_literal_datum(start_key, &nulls[2]);
	args[3] = key_literal_datum(end_key, &nulls[3]);
	args[4] = Int64GetDatum((int64) start_block);
	args[5] = Int64GetDatum((int64) end_block);
	nulls[5] = BlockNumberIsValid(end_block) ? ' ' : 'n';
	become_owner(job, &saved);
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (job_id, range_no, last_key, end_key,"
									   " next_block, end_block) VALUES ($1, $2, $3, $4, $5, $6)",
									   ranges_table(job->nsp)),
							  6, types, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "safe_backfill: recording the ranges failed");
	restore_user(&saved);
}

/* Whether this job ran in parallel ranges at all (finished or not). */
bool
job_has_ranges(BackfillJob *job)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(job->id)};
	bool		found;

	if (SPI_execute_with_args(psprintf("SELECT 1 FROM %s WHERE job_id = $1 LIMIT 1",
									   ranges_table(job->nsp)),
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading the ranges failed");
	found = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/* The unfinished ranges of this job, in order; how many. */
int
job_load_ranges(BackfillJob *job, JobRange **ranges)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(job->id)};
	uint64		i;
	int			rc;

	rc = SPI_execute_with_args(psprintf("SELECT range_no, last_key, end_key, next_block, end_block"
										" FROM %s WHERE job_id = $1 AND NOT done ORDER BY range_no",
										ranges_table(job->nsp)),
							   1, types, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading the ranges failed");
	*ranges = palloc0(sizeof(JobRange) * Max(1, SPI_processed));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		(*ranges)[i].range_no = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		(*ranges)[i].last_key = SPI_getvalue(tup, desc, 2);
		(*ranges)[i].end_key = SPI_getvalue(tup, desc, 3);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		(*ranges)[i].next_block = isnull ? 0 : (BlockNumber) DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		(*ranges)[i].end_block = isnull ? InvalidBlockNumber : (BlockNumber) DatumGetInt64(d);
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
};

/* For a worker: where to record its range's progress, as the jobs' owner. */
RangeRecorder *
range_recorder(Oid nsp, int64 job_id, int range_no)
{
	RangeRecorder *r = palloc0(sizeof(RangeRecorder));
	Oid			relid = get_relname_relid("safe_backfill_job_ranges", nsp);
	HeapTuple	tup;

	if (!OidIsValid(relid))
		elog(ERROR, "safe_backfill: table safe_backfill_job_ranges is missing");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	r->owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	r->table = ranges_table(nsp);
	r->job_id = job_id;
	r->range_no = range_no;
	return r;
}

static void
range_update(RangeRecorder *r, ArrayType *keys, BlockNumber block, int64 filled, bool done)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTARRAYOID, INT8OID, INT8OID, BOOLOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Oid			saved_user;
	int			saved_context;

	if (r->plan == NULL)
	{
		r->plan = SPI_prepare(psprintf("UPDATE %s SET last_key = coalesce($3, last_key),"
									   " next_block = coalesce($4, next_block),"
									   " rows_done = rows_done + $5, done = $6"
									   " WHERE job_id = $1 AND range_no = $2", r->table),
							  6, types);
		if (r->plan == NULL || SPI_keepplan(r->plan) != 0)
			elog(ERROR, "safe_backfill: preparing the range update failed");
	}
	args[0] = Int64GetDatum(r->job_id);
	args[1] = Int32GetDatum(r->range_no);
	args[2] = PointerGetDatum(keys);
	nulls[2] = keys ? ' ' : 'n';
	args[3] = Int64GetDatum((int64) block);
	nulls[3] = BlockNumberIsValid(block) ? ' ' : 'n';
	args[4] = Int64GetDatum(filled);
	args[5] = BoolGetDatum(done);

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(r->owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_execute_plan(r->plan, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "safe_backfill: recording the range failed");
	SetUserIdAndSecContext(saved_user, saved_context);
}

/* In the batch's own transaction, like job_record_batch. */
void
range_record_batch(RangeRecorder *r, ArrayType *keys, BlockNumber block, int64 filled)
{
	range_update(r, keys, block, filled, false);
}

void
range_record_done(RangeRecorder *r)
{
	range_update(r, NULL, InvalidBlockNumber, 0, true);
}

/*
 * detached.c
 *		Detached runs: safe_backfill_start checks its arguments like a CALL,
 *		queues the run in the jobs table (arguments, roles and settings
 *		recorded with it, so that it outlives the caller's session and the
 *		server) and starts a background worker that runs it as the calling
 *		role; safe_backfill_wait and safe_backfill_cancel; and, with
 *		shared_preload_libraries = 'safe_backfill', a launcher that resumes
 *		the detached runs a restart or a crash interrupted.
 *
 * The worker runs exactly what a CALL runs (request.c): it resolves and
 * checks the table again by OID, as the role that started the run, with
 * that role's privileges as they are now, then run_backfill.  It never runs
 * as anyone else: it connects as the caller's session user and takes the
 * caller's current role, as a parallel worker does.
 *
 * The job row is inserted in the caller's transaction, so it exists only
 * once the caller commits: the worker first waits for that transaction to
 * end, then finds the row, or nothing if the caller rolled back.
 */
#include "safe_backfill.h"
#include "src/detached.h"
#include "src/jobs.h"
#include "src/request.h"
#include "src/settings.h"
#include "src/xact.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PGDLLEXPORT void safe_backfill_detached_main(Datum main_arg);
PGDLLEXPORT void safe_backfill_resumer_main(Datum main_arg);
PGDLLEXPORT void safe_backfill_launcher_main(Datum main_arg);

/* What a detached run's worker is started with (bgw_extra). */
typedef struct DetachedLaunch
{
	Oid			dboid;
	Oid			session_role;
	Oid			run_role;
	Oid			procoid;		/* safe_backfill_start: its schema holds the jobs tables */
	int64		job_id;
	TransactionId wait_xid;		/* the caller's transaction, or invalid */
} DetachedLaunch;

/* set by _PG_init in the postmaster when preloaded, inherited by every backend */
static bool launcher_registered = false;

/*
 * The settings a run depends on, recorded with it and restored by its
 * worker: ours, and those that change what a value, an expression or a
 * lock wait means.
 */
static const char *const recorded_settings[] = {
	"safe_backfill.progress_interval", "safe_backfill.lock_timeout",
	"safe_backfill.max_lock_attempts", "safe_backfill.target_batch_ms",
	"safe_backfill.batch_lock_timeout", "safe_backfill.max_batch_retries",
	"safe_backfill.max_replica_lag", "safe_backfill.max_replica_wait",
	"safe_backfill.iteration", "safe_backfill.reuse_space",
	"safe_backfill.synchronous_commit", "safe_backfill.hot_rounds",
	"safe_backfill.job_retention",
	"lock_timeout", "DateStyle", "IntervalStyle", "TimeZone", "extra_float_digits",
	"bytea_output", "lc_monetary", "lc_numeric", "lc_time", "xmloption",
	"search_path", "work_mem",
};

/* {name, value, ...} of the caller's recorded settings, as text[]. */
static Datum
caller_settings(void)
{
	Datum	   *elems = palloc(sizeof(Datum) * 2 * lengthof(recorded_settings));
	int			n = 0;
	int			i;

	for (i = 0; i < lengthof(recorded_settings); i++)
	{
		const char *value = GetConfigOption(recorded_settings[i], true, false);

		if (value == NULL)
			continue;
		elems[n++] = CStringGetTextDatum(recorded_settings[i]);
		elems[n++] = CStringGetTextDatum(value);
	}
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * In the worker, as the run's role: the caller's settings, as the caller
 * could set them (a setting only a superuser may change is kept as it is
 * unless the role is one).
 */
static void
restore_settings(Datum settings)
{
	Datum	   *elems;
	int			n;
	int			i;
	GucContext	context = superuser() ? PGC_SUSET : PGC_USERSET;

	deconstruct_array(DatumGetArrayTypeP(settings), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, &n);
	for (i = 0; i + 1 < n; i += 2)
	{
		char	   *name = TextDatumGetCString(elems[i]);
		char	   *value = TextDatumGetCString(elems[i + 1]);
		const char *now = GetConfigOption(name, true, false);

		if (now != NULL && strcmp(now, value) == 0)
			continue;
		(void) set_config_option(name, value, context, PGC_S_SESSION,
								 GUC_ACTION_SET, true, WARNING, false);
	}
}

static void
fill_worker(BackgroundWorker *worker, const char *function, const char *name)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "safe_backfill");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "safe_backfill detached");
}

/* Start the worker of a run; false when no background worker slot is free. */
static bool
launch_run_worker(const DetachedLaunch *launch, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	char		name[BGW_MAXLEN];

	snprintf(name, sizeof(name), "safe_backfill detached run " INT64_FORMAT, launch->job_id);
	fill_worker(&worker, "safe_backfill_detached_main", name);
	memcpy(worker.bgw_extra, launch, sizeof(DetachedLaunch));
	worker.bgw_notify_pid = handle ? MyProcPid : 0;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

static void
refuse_no_worker_slot(const char *procname)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("%s: no background worker slot is free for the run", procname),
			 errdetail("Every one of the max_worker_processes slots is taken; nothing was started."),
			 errhint("Try again when a background worker has exited, or raise max_worker_processes.")));
}

/*
 * The roles the worker takes: it connects as the session user and takes the
 * current role, as the caller did with SET ROLE, so it can do what the
 * caller could (SET ROLE back included), nothing more.  Inside a SECURITY
 * DEFINER function the current role is the function's owner, whom the
 * session user need not be able to become: the worker connects as that
 * role itself, so it must be able to log in.  A security-restricted
 * operation (an index expression, a materialized view's query) may not
 * start anything that outlives it.
 */
static void
worker_roles(DetachedRun *run)
{
	Oid			user;
	int			sec_context;
	HeapTuple	tup;
	bool		can_login = false;

	GetUserIdAndSecContext(&user, &sec_context);
	if (sec_context & SECURITY_RESTRICTED_OPERATION)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("safe_backfill_start cannot be called in a security-restricted operation"),
				 errdetail("An index expression, a materialized view's query or a maintenance command may not start a run that outlives it; nothing was started.")));
	run->run_role = user;
	run->session_role = (sec_context & SECURITY_LOCAL_USERID_CHANGE) ? user : GetSessionUserId();
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(run->session_role));
	if (HeapTupleIsValid(tup))
	{
		can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
		ReleaseSysCache(tup);
	}
	if (!can_login)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("safe_backfill_start: role \"%s\" cannot log in, and the run's worker connects as it",
						GetUserNameFromId(run->session_role, false)),
				 errdetail("Inside a SECURITY DEFINER function the run is the function owner's, and its background worker connects as that role; nothing was started."),
				 errhint("Call safe_backfill_start outside the function, or give the role LOGIN.")));
}

/*
 * SELECT safe_backfill_start(...): the checks a CALL makes, then the run
 * queued and its worker started; returns the run's id at once.
 */
int64
detached_start(BackfillRequest *req)
{
	DetachedRun run;
	DetachedLaunch launch;
	BackfillTarget *target;
	int64		id;

	memset(&run, 0, sizeof(DetachedRun));
	worker_roles(&run);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill_start: SPI_connect failed");
	target = request_target(req);
	run.opts = req->opts;
	run.settings = caller_settings();
	id = job_enqueue_detached(target, &run);
	SPI_finish();

	memset(&launch, 0, sizeof(DetachedLaunch));
	launch.dboid = MyDatabaseId;
	launch.session_role = run.session_role;
	launch.run_role = run.run_role;
	launch.procoid = req->opts.procoid;
	launch.job_id = id;
	launch.wait_xid = GetTopTransactionId();
	if (!launch_run_worker(&launch, NULL))
		refuse_no_worker_slot("safe_backfill_start");
	return id;
}

/* ---------------------------------------------------------------------
 * The worker of one detached run
 * --------------------------------------------------------------------- */

/*
 * Connect as the caller's session user and take its role, as a parallel
 * worker does: the run has exactly the privileges of the role that started
 * it, as they are now.
 */
static void
become_run_role(const DetachedLaunch *launch)
{
	bool		is_superuser;

	BackgroundWorkerInitializeConnectionByOid(launch->dboid, launch->session_role, 0);
	StartTransactionCommand();
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(launch->run_role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("safe_backfill: the role that started detached run " INT64_FORMAT " no longer exists",
						launch->job_id),
				 errdetail("A detached run runs only as the role that started it; nothing was changed.")));
	is_superuser = superuser_arg(launch->run_role);
	CommitTransactionCommand();
	SetCurrentRoleId(launch->run_role, is_superuser);
}

/*
 * The run's own lock, held until the worker exits: a second worker of the
 * same run (a launcher and a start both resuming it) waits for the first
 * and then finds it finished.
 */
static void
lock_run(int64 id)
{
	LOCKTAG		tag;

	set_detached_lock_tag(&tag, id);
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
}

/*
 * Run it: read it back, restore the caller's settings, take it, then what
 * a CALL does.  Returns quietly when there is nothing to run (the caller
 * rolled back, or it was cancelled or finished meanwhile).
 */
static void
run_detached(const DetachedLaunch *launch)
{
	DetachedRun run;
	BackfillRequest req;
	BackfillTarget *target;
	bool		found;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill detached run: SPI_connect_ext failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	found = job_load_detached(launch->procoid, launch->job_id, &run);
	PopActiveSnapshot();
	if (!found ||
		(strcmp(run.state, "queued") != 0 && strcmp(run.state, "running") != 0))
	{
		SPI_finish();
		return;
	}
	restore_settings(run.settings);
	if (!job_claim_detached(launch->procoid, launch->job_id))
	{
		SPI_finish();
		return;
	}
	commit_transaction();

	memset(&req, 0, sizeof(BackfillRequest));
	req.relid = run.relid;
	req.colname = run.colname;
	req.value_text = run.value_text;
	req.expression = run.expression;
	req.opts = run.opts;
	request_options_from_settings(&req.opts);
	target = request_target(&req);
	request_run(target, &req);
	commit_transaction();
	job_end_detached(launch->procoid, launch->job_id, NULL, NULL);
	SPI_finish();
}

/*
 * Whatever stopped the run (its own error, recorded by the run already, or
 * one before it started, or safe_backfill_cancel): record it with its
 * SQLSTATE for safe_backfill_wait, in a transaction of its own.
 */
static void
record_end(const DetachedLaunch *launch, ErrorData *edata)
{
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill detached run: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	job_end_detached(launch->procoid, launch->job_id, edata->message,
					 unpack_sql_state(edata->sqlerrcode));
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

void
safe_backfill_detached_main(Datum main_arg)
{
	DetachedLaunch launch;
	Portal		portal;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&launch, MyBgworkerEntry->bgw_extra, sizeof(DetachedLaunch));
	CurrentMemoryContext = AllocSetContextCreate(TopMemoryContext, "safe_backfill detached run",
												 ALLOCSET_DEFAULT_SIZES);

	PG_TRY();
	{
		become_run_role(&launch);
		pgstat_report_activity(STATE_RUNNING, "safe_backfill detached run");

		StartTransactionCommand();
		lock_run(launch.job_id);
		/* the job row is there once the caller's transaction commits */
		if (TransactionIdIsValid(launch.wait_xid))
			XactLockTableWait(launch.wait_xid, NULL, NULL, XLTW_None);
		CommitTransactionCommand();

		/* a portal, as a CALL has: it gives SPI the snapshot each statement needs */
		StartTransactionCommand();
		portal = CreatePortal("safe_backfill detached run", true, true);
		portal->status = PORTAL_READY;
		MarkPortalActive(portal);
		ActivePortal = portal;
		PortalContext = portal->portalContext;
		run_detached(&launch);
		/* the snapshot SPI left for the portal after the last commit */
		if (portal->portalSnapshot != NULL && ActiveSnapshotSet() &&
			GetActiveSnapshot() == portal->portalSnapshot)
			PopActiveSnapshot();
		portal->portalSnapshot = NULL;
		MarkPortalDone(portal);
		ActivePortal = NULL;
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ActivePortal = NULL;
		record_end(&launch, edata);
		RESUME_INTERRUPTS();
		proc_exit(1);
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/* ---------------------------------------------------------------------
 * safe_backfill_wait and safe_backfill_cancel
 * --------------------------------------------------------------------- */

/* Read the run; only the role that started it, or a superuser, may act on it. */
static void
load_own_run(Oid procoid, int64 id, DetachedRun *run, const char *procname)
{
	bool		found;

	PushActiveSnapshot(GetTransactionSnapshot());
	found = job_load_detached(procoid, id, run);
	PopActiveSnapshot();
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s: there is no detached run " INT64_FORMAT, procname, id),
				 errhint("safe_backfill_start returns the id of a detached run; safe_backfill_progress lists the runs.")));
	if (run->run_role != GetUserId() && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s: permission denied for detached run " INT64_FORMAT, procname, id),
				 errdetail("Only the role that started a detached run, or a superuser, may wait for it or cancel it.")));
}

static bool
is_state(const DetachedRun *run, const char *state)
{
	return strcmp(run->state, state) == 0;
}

/* The run ended: return if it is done, raise its error otherwise. */
static void
report_end(const DetachedRun *run)
{
	if (is_state(run, "done"))
	{
		ereport(NOTICE,
				(errmsg("safe_backfill_wait: run " INT64_FORMAT " is done: " INT64_FORMAT " rows filled",
						run->id, run->rows_done)));
		return;
	}
	if (is_state(run, "cancelled"))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("safe_backfill_wait: run " INT64_FORMAT " was cancelled", run->id),
				 errdetail("The batches committed before stay (" INT64_FORMAT " rows filled); %s.",
						   run->rows_done, run->error ? run->error : "cancelled"),
				 errhint("Start it again with the same arguments to resume it.")));
	ereport(ERROR,
			(errcode(run->sqlstate && strlen(run->sqlstate) == 5 ?
					 MAKE_SQLSTATE(run->sqlstate[0], run->sqlstate[1], run->sqlstate[2],
								   run->sqlstate[3], run->sqlstate[4]) :
					 ERRCODE_INTERNAL_ERROR),
			 errmsg("safe_backfill_wait: run " INT64_FORMAT " failed: %s", run->id,
					run->error ? run->error : "(no message recorded)"),
			 errdetail("The batches committed before stay (" INT64_FORMAT " rows filled).", run->rows_done),
			 errhint("Fix the cause, then start it again with the same arguments to resume it.")));
}

/*
 * Without the launcher nothing resumes a run whose worker a restart
 * stopped: say so instead of waiting for it.
 */
static void
refuse_interrupted(const DetachedRun *run)
{
	if (launcher_registered || !is_state(run, "running") || run->alive)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("safe_backfill_wait: run " INT64_FORMAT " was interrupted: no process works on it", run->id),
			 errdetail("Its worker stopped (a server restart or crash) after " INT64_FORMAT " rows; without shared_preload_libraries = 'safe_backfill' no launcher resumes it.",
					   run->rows_done),
			 errhint("Resume it: call safe_backfill_start (or CALL safe_backfill) again with the same arguments.")));
}

/*
 * CALL safe_backfill_wait(job_id, timeout): until the run ends, relaying
 * its progress; no lock and no snapshot is held while sleeping (a commit
 * between two looks).
 */
void
detached_wait(Oid procoid, int64 id, int timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz last_report = 0;
	int64		last_rows = -1;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill_wait: SPI_connect_ext failed");
	for (;;)
	{
		DetachedRun run;
		int			sleep_ms = 1000;

		load_own_run(procoid, id, &run, "safe_backfill_wait");
		if (!is_state(&run, "queued") && !is_state(&run, "running"))
		{
			report_end(&run);
			break;
		}
		if (!launcher_registered && is_state(&run, "running") && !run.alive)
		{
			/*
			 * The row was read with the statement's snapshot and the locks a
			 * moment later: a worker that recorded its end and exited in
			 * between looks interrupted.  Its end committed before its lock
			 * went, so a second look sees it.
			 */
			commit_transaction();
			load_own_run(procoid, id, &run, "safe_backfill_wait");
			if (!is_state(&run, "queued") && !is_state(&run, "running"))
			{
				report_end(&run);
				break;
			}
		}
		refuse_interrupted(&run);
		if (safe_backfill_progress_interval_ms > 0 && run.rows_done != last_rows &&
			TimestampDifferenceExceeds(last_report, GetCurrentTimestamp(),
									   safe_backfill_progress_interval_ms))
		{
			ereport(NOTICE,
					(errmsg("safe_backfill_wait: run " INT64_FORMAT " is %s: " INT64_FORMAT " of about " INT64_FORMAT " rows filled",
							id, run.state, run.rows_done, run.rows_estimated)));
			last_rows = run.rows_done;
			last_report = GetCurrentTimestamp();
		}
		commit_transaction();
		if (timeout_ms >= 0)
		{
			double		left = timeout_ms - elapsed_ms(start);

			if (left <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("safe_backfill_wait: run " INT64_FORMAT " is still %s after the timeout",
								id, run.state),
						 errdetail("It goes on in the background: " INT64_FORMAT " rows filled so far.",
								   run.rows_done),
						 errhint("Wait again with CALL safe_backfill_wait(" INT64_FORMAT "), or stop it with SELECT safe_backfill_cancel(" INT64_FORMAT ").",
								 id, id)));
			sleep_ms = Min(sleep_ms, (int) left + 1);
		}
		sleep_interruptibly(sleep_ms);
	}
	SPI_finish();
}

/*
 * SELECT safe_backfill_cancel(job_id): a run nobody works on is cancelled
 * at once; a running one's worker gets a cancel, rolls back its batch and
 * records the run as cancelled (resumable like a failed run).  False when
 * the run had already ended.
 */
bool
detached_cancel(Oid procoid, int64 id)
{
	DetachedRun run;
	bool		cancelled = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill_cancel: SPI_connect failed");
	load_own_run(procoid, id, &run, "safe_backfill_cancel");
	if (is_state(&run, "queued") || is_state(&run, "running"))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		cancelled = job_cancel_idle_detached(procoid, id);
		PopActiveSnapshot();
		if (!cancelled && run.pid > 0)
		{
			PGPROC	   *proc = BackendPidGetProc(run.pid);

			/* the process that works on the run: same database, same role */
			if (proc != NULL && proc->databaseId == MyDatabaseId &&
				proc->roleId == run.session_role)
				cancelled = kill(run.pid, SIGINT) == 0;
		}
	}
	SPI_finish();
	return cancelled;
}

/* ---------------------------------------------------------------------
 * After a restart: the launcher, and a resumer in each database
 * --------------------------------------------------------------------- */

/* The schema's safe_backfill_start, or InvalidOid: not installed, or not 1.2 yet. */
static Oid
start_function(void)
{
	Oid			procoid = InvalidOid;
	bool		isnull;

	if (SPI_execute("SELECT p.oid FROM pg_catalog.pg_proc p"
					" JOIN pg_catalog.pg_extension e"
					"   ON p.pronamespace OPERATOR(pg_catalog.=) e.extnamespace"
					" WHERE e.extname OPERATOR(pg_catalog.=) 'safe_backfill'"
					" AND p.proname OPERATOR(pg_catalog.=) 'safe_backfill_start'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		procoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	return procoid;
}

/* A run whose role is gone fails, recorded; it never runs as another role. */
static bool
roles_still_exist(Oid procoid, DetachedRun *run)
{
	HeapTuple	tup;
	bool		can_login = false;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(run->run_role)))
	{
		job_end_detached(procoid, run->id,
						 "the role that started this detached run no longer exists; it runs only as that role",
						 "42704");
		return false;
	}
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(run->session_role));
	if (HeapTupleIsValid(tup))
	{
		can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
		ReleaseSysCache(tup);
	}
	if (!can_login)
	{
		job_end_detached(procoid, run->id,
						 "the role whose session started this detached run no longer exists or may no longer log in",
						 "28000");
		return false;
	}
	return true;
}

/* The runs to resume in this database, checked, in TopMemoryContext. */
static List *
runs_to_resume(Oid *procoid)
{
	List	   *runs = NIL;
	List	   *found;
	ListCell   *lc;

	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "safe_backfill resumer: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	*procoid = start_function();
	if (OidIsValid(*procoid))
	{
		found = jobs_detached_to_resume(*procoid);
		foreach(lc, found)
		{
			DetachedRun *run = lfirst(lc);

			if (roles_still_exist(*procoid, run))
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
				DetachedRun *copy = palloc(sizeof(DetachedRun));

				memcpy(copy, run, sizeof(DetachedRun));
				runs = lappend(runs, copy);
				MemoryContextSwitchTo(old);
			}
		}
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return runs;
}

/*
 * One database: start a worker for each detached run nobody works on, at
 * most safe_backfill.max_detached_runs at once, and wait for them.
 */
void
safe_backfill_resumer_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	Oid			procoid;
	List	   *runs;
	ListCell   *lc;
	BackgroundWorkerHandle **handles;
	int			max = Max(1, safe_backfill_max_detached_runs);
	int			n = 0;
	int			i;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	runs = runs_to_resume(&procoid);
	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * Max(1, list_length(runs)));
	foreach(lc, runs)
	{
		DetachedRun *run = lfirst(lc);
		DetachedLaunch launch;

		if (n >= max && handles[n - max] != NULL)
			(void) WaitForBackgroundWorkerShutdown(handles[n - max]);
		memset(&launch, 0, sizeof(DetachedLaunch));
		launch.dboid = dboid;
		launch.session_role = run->session_role;
		launch.run_role = run->run_role;
		launch.procoid = procoid;
		launch.job_id = run->id;
		launch.wait_xid = InvalidTransactionId;
		if (!launch_run_worker(&launch, &handles[n]))
		{
			ereport(WARNING,
					(errmsg("safe_backfill: no background worker slot is free to resume detached run " INT64_FORMAT,
							run->id),
					 errhint("Raise max_worker_processes; resume it by calling safe_backfill_start again with the same arguments.")));
			handles[n] = NULL;
			continue;
		}
		ereport(LOG,
				(errmsg("safe_backfill: resuming detached run " INT64_FORMAT " in database %u",
						run->id, dboid)));
		n++;
	}
	for (i = Max(0, n - max); i < n; i++)
		if (handles[i] != NULL)
			(void) WaitForBackgroundWorkerShutdown(handles[i]);
	proc_exit(0);
}

/* The databases a resumer looks into: every one that accepts connections. */
static List *
databases(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * Started by the postmaster after startup and after each crash recovery:
 * a resumer for each database, then sleep (a launcher that exited would
 * not be started again after a crash).
 */
void
safe_backfill_launcher_main(Datum main_arg)
{
	ListCell   *lc;
	List	   *dbs;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	dbs = databases();
	foreach(lc, dbs)
	{
		BackgroundWorker worker;

		fill_worker(&worker, "safe_backfill_resumer_main", "safe_backfill detached resumer");
		snprintf(worker.bgw_type, BGW_MAXLEN, "safe_backfill resumer");
		worker.bgw_main_arg = ObjectIdGetDatum(lfirst_oid(lc));
		if (!RegisterDynamicBackgroundWorker(&worker, NULL))
			ereport(WARNING,
					(errmsg("safe_backfill: no background worker slot is free to resume the detached runs of database %u",
							lfirst_oid(lc)),
					 errhint("Raise max_worker_processes.")));
	}
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* _PG_init, in the postmaster when preloaded: the launcher. */
void
detached_register_launcher(void)
{
	BackgroundWorker worker;

	fill_worker(&worker, "safe_backfill_launcher_main", "safe_backfill detached launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "safe_backfill launcher");
	worker.bgw_restart_time = 10;
	RegisterBackgroundWorker(&worker);
	launcher_registered = true;
}

/* safe_backfill--1.3.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION safe_backfill" to load this file. \quit

-- No SET clause and no SECURITY DEFINER: either would make every CALL atomic
-- and forbid the per-batch COMMIT this procedure exists for.
CREATE PROCEDURE safe_backfill(
    tbl        regclass,
    col        name,
    value      anycompatible DEFAULT NULL,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    set_not_null boolean DEFAULT false,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    workers integer DEFAULT 1,
    resume  boolean DEFAULT true,
    -- instead of value: one SQL expression, computed for each row (see README)
    expression text DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill';

COMMENT ON PROCEDURE safe_backfill(regclass, name, anycompatible, integer, integer, boolean, integer, interval, integer, boolean, text) IS
'Fill the NULLs of a column with a value, or with an expression computed for each row, in batches that each commit';

-- drop_check: NULL drops the CHECK only if this call added it, true always,
-- false never.  lock_timeout and max_attempts default to the GUCs
-- safe_backfill.lock_timeout and safe_backfill.max_lock_attempts.
CREATE PROCEDURE safe_set_not_null(
    tbl          regclass,
    col          name,
    drop_check   boolean DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    max_attempts integer DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_set_not_null';

COMMENT ON PROCEDURE safe_set_not_null(regclass, name, boolean, interval, integer) IS
'Make a column NOT NULL through a validated CHECK, without a table scan under ACCESS EXCLUSIVE';

-- One row per run of safe_backfill, updated in the same transaction as each
-- batch, so it is exact after a crash or a cancel; a later CALL with the same
-- table, column and value (value_text) or expression (expression, its text as
-- given) resumes after last_key / last_block.  Read and
-- written only by the procedures, as the table's owner (locked down: see
-- jobs.c); nobody else may read it directly, since value_text holds the
-- values written into tables others may not read.  Each role sees its own
-- runs, and the runs on tables it may read, through safe_backfill_progress.
CREATE TABLE safe_backfill_jobs (
    id             bigserial PRIMARY KEY,
    relid          oid NOT NULL,
    attnum         integer NOT NULL,
    table_name     text NOT NULL,
    column_name    name NOT NULL,
    value_text     text,
    expression     text,
    iteration      text NOT NULL CHECK (iteration IN ('key', 'ctid')),
    phase          text NOT NULL DEFAULT 'main' CHECK (phase IN ('main', 'sweep', 'done')),
    last_key       text[],
    last_block     bigint,
    rows_estimated bigint,
    rows_scanned   bigint NOT NULL DEFAULT 0,
    rows_done      bigint NOT NULL DEFAULT 0,
    batches        bigint NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at    timestamptz,
    state          text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
    error          text,
    pid            integer,
    username       name NOT NULL DEFAULT current_user,
    -- a run fills a value or computes an expression, never both
    CHECK ((value_text IS NULL) <> (expression IS NULL))
);
CREATE INDEX safe_backfill_jobs_target ON safe_backfill_jobs (relid, attnum, id);
-- Not marked with pg_extension_config_dump, nor is its sequence or
-- safe_backfill_job_ranges: the rows are this cluster's run state, keyed by
-- table OIDs that a restore renumbers (a restored row would point at nothing,
-- or at another table, whose resume would skip rows), and they hold values,
-- expressions and errors private to their roles.  So pg_dump reads none of
-- them (a database owner who is not a superuser can dump a database that
-- has the extension) and a restored database starts with no runs.
REVOKE ALL ON safe_backfill_jobs FROM PUBLIC;

-- The key or block ranges of a parallel run (workers => n), one row each,
-- updated in the same transaction as each batch of the worker filling it,
-- so an interrupted parallel run resumes every range where it stopped.
CREATE TABLE safe_backfill_job_ranges (
    job_id     bigint NOT NULL REFERENCES safe_backfill_jobs (id) ON DELETE CASCADE,
    range_no   integer NOT NULL,
    last_key   text[],      -- keys up to this one are done (NULL: none yet)
    end_key    text[],      -- last key of the range (NULL: to the end)
    next_block bigint,      -- block ranges: where to go on
    end_block  bigint,      -- block ranges: first block past the range (NULL: to the end)
    -- what the range's batches committed; while the job is in its parallel
    -- main pass, its own counts are their sums (range 0 starts with what the
    -- job counted before it was split into ranges)
    rows_done  bigint NOT NULL DEFAULT 0,
    done       boolean NOT NULL DEFAULT false,
    -- (columns added by 1.1 come last, as ALTER EXTENSION UPDATE adds them)
    rows_scanned bigint NOT NULL DEFAULT 0,
    batches    bigint NOT NULL DEFAULT 0,
    shard_id   bigint,      -- Citus per-shard mode: the shard this range is (range_no: its ordinal)
    PRIMARY KEY (job_id, range_no)
);
REVOKE ALL ON safe_backfill_job_ranges FROM PUBLIC;

-- Delete the records of the calling role's own finished runs (done or
-- failed; their ranges go with them): of table tbl only, or of every table
-- (NULL), that finished at least older_than ago.  Unfinished runs stay, to
-- be resumed.  Returns how many runs were deleted.  safe_backfill.job_retention
-- deletes every role's old records when a run starts.
CREATE FUNCTION safe_backfill_forget(
    tbl        regclass DEFAULT NULL,
    older_than interval DEFAULT '0 s')
RETURNS bigint
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill_forget';

COMMENT ON FUNCTION safe_backfill_forget(regclass, interval) IS
'Delete the records of your own finished safe_backfill runs';

-- Progress of the runs a role may know about, from any session: its own (or
-- those of a role it is a member of) and those on tables it may read.  A
-- security barrier, so no function of the caller's sees the other rows.  The
-- value written and the expression are not shown, nor a run's error to roles
-- other than members of its caller's.  Errors and cancels are recorded as 'failed'
-- with the error; a run still 'running' whose session no longer holds its
-- advisory lock was interrupted (its backend died or the server crashed).
-- Calling safe_backfill again with the same arguments resumes it.  The lock
-- lives in a key space of its own: objsubid 21314 (0x5342, jobs.c), never 1
-- or 2 as SQL-level advisory locks.
CREATE VIEW safe_backfill_progress WITH (security_barrier) AS
SELECT j.id,
       j.table_name,
       j.column_name,
       CASE WHEN j.state = 'running' AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = j.pid
                   AND l.classid = j.relid AND l.objid = j.attnum::pg_catalog.oid AND l.objsubid = 21314)
            THEN 'interrupted' ELSE j.state END AS state,
       j.phase,
       j.rows_done,
       j.rows_estimated,
       pg_catalog.round(100.0 * LEAST(j.rows_scanned, j.rows_estimated)
                        / NULLIF(j.rows_estimated, 0), 1) AS percent,
       pg_catalog.round(j.rows_done / NULLIF(EXTRACT(epoch FROM j.updated_at - j.started_at), 0)) AS rows_per_second,
       CASE WHEN j.state = 'running' AND j.rows_scanned > 0 AND j.rows_estimated > j.rows_scanned
            THEN (j.updated_at - j.started_at) * ((j.rows_estimated - j.rows_scanned)::float8 / j.rows_scanned) END AS eta,
       j.batches,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.pid,
       j.username,
       -- an error can carry what its run read (a value in the message of
       -- an expression's failed cast, the row a trigger refused) from
       -- tables, or rows behind row-level security, that a reader of the
       -- table filled may not read: only its caller's role sees it
       CASE WHEN EXISTS (
                 SELECT 1 FROM pg_catalog.pg_roles r
                 WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
            THEN j.error
            WHEN j.error IS NOT NULL
            THEN 'hidden: the error of a run is shown to members of role '
                 || pg_catalog.quote_ident(j.username) END AS error
FROM safe_backfill_jobs j
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
   OR pg_catalog.has_table_privilege(j.relid, 'SELECT');
GRANT SELECT ON safe_backfill_progress TO PUBLIC;

-- ---------------------------------------------------------------------
-- 1.2: detached runs.  safe_backfill_start queues a run that a background
-- worker runs as the calling role, detached from the caller's session;
-- safe_backfill_wait waits for it, safe_backfill_cancel stops it.  With
-- shared_preload_libraries = 'safe_backfill' a launcher resumes the runs a
-- restart or a crash interrupted.
-- ---------------------------------------------------------------------

-- A detached run is 'queued' until its worker takes it, and 'cancelled'
-- when safe_backfill_cancel stopped it (resumable, like a failed run).
ALTER TABLE safe_backfill_jobs DROP CONSTRAINT safe_backfill_jobs_state_check;
ALTER TABLE safe_backfill_jobs ADD CONSTRAINT safe_backfill_jobs_state_check
    CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled'));

-- What the worker of a detached run needs to run it, now or after a
-- restart: the roles (it connects as session_role, the caller's session
-- user, and runs as run_role, the caller's current user, with that role's
-- privileges as they are then), the arguments as checked (the value and
-- the expression are in its safe_backfill_jobs row) and the caller's
-- settings ({name, value, ...}).  Read and written only by the functions,
-- as the table's owner, like safe_backfill_jobs.
CREATE TABLE safe_backfill_detached (
    job_id             bigint PRIMARY KEY REFERENCES safe_backfill_jobs (id) ON DELETE CASCADE,
    session_role       oid NOT NULL,
    run_role           oid NOT NULL,
    batch_size         integer NOT NULL,
    pause_ms           integer NOT NULL,
    set_not_null       boolean NOT NULL,
    target_batch_ms    integer NOT NULL,
    max_replica_lag_ms integer NOT NULL,
    workers            integer NOT NULL,
    resume             boolean NOT NULL,
    settings           text[] NOT NULL,
    queued_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    cancel_requested   boolean NOT NULL DEFAULT false,
    sqlstate           text     -- of the error that ended it
);
REVOKE ALL ON safe_backfill_detached FROM PUBLIC;

-- The arguments of safe_backfill; returns the run's id (safe_backfill_jobs.id)
-- at once.  The run starts when the calling transaction commits (nothing
-- runs if it rolls back).
CREATE FUNCTION safe_backfill_start(
    tbl        regclass,
    col        name,
    value      anycompatible DEFAULT NULL,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    set_not_null boolean DEFAULT false,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    workers integer DEFAULT 1,
    resume  boolean DEFAULT true,
    expression text DEFAULT NULL)
RETURNS bigint
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill_start';

COMMENT ON FUNCTION safe_backfill_start(regclass, name, anycompatible, integer, integer, boolean, integer, interval, integer, boolean, text) IS
'Start a safe_backfill run in a background worker, detached from this session; returns its id';

-- Waits (committing between looks, so CALL it on its own) until the run
-- ends; raises its error if it failed or was cancelled, and an error after
-- timeout (NULL: no limit).
CREATE PROCEDURE safe_backfill_wait(
    job_id  bigint,
    timeout interval DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill_wait';

COMMENT ON PROCEDURE safe_backfill_wait(bigint, interval) IS
'Wait for a detached safe_backfill run to end; raise its error if it failed';

CREATE FUNCTION safe_backfill_cancel(job_id bigint)
RETURNS boolean
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill_cancel';

COMMENT ON FUNCTION safe_backfill_cancel(bigint) IS
'Stop a detached safe_backfill run (it stays resumable); false if it had ended';

-- The progress view says which runs are detached; their state is 'queued'
-- until a worker takes them, and 'cancelled' after safe_backfill_cancel.
CREATE OR REPLACE VIEW safe_backfill_progress WITH (security_barrier) AS
SELECT j.id,
       j.table_name,
       j.column_name,
       CASE WHEN j.state = 'running' AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = j.pid
                   AND ((l.classid = j.relid AND l.objid = j.attnum::pg_catalog.oid AND l.objsubid = 21314)
                        -- or, for a detached run, the lock its worker holds (objsubid 0x5345, keyed by the id)
                        OR (l.classid = (j.id >> 32)::pg_catalog.oid
                            AND l.objid = (j.id & 4294967295)::pg_catalog.oid AND l.objsubid = 21317)))
            THEN 'interrupted' ELSE j.state END AS state,
       j.phase,
       j.rows_done,
       j.rows_estimated,
       pg_catalog.round(100.0 * LEAST(j.rows_scanned, j.rows_estimated)
                        / NULLIF(j.rows_estimated, 0), 1) AS percent,
       pg_catalog.round(j.rows_done / NULLIF(EXTRACT(epoch FROM j.updated_at - j.started_at), 0)) AS rows_per_second,
       CASE WHEN j.state = 'running' AND j.rows_scanned > 0 AND j.rows_estimated > j.rows_scanned
            THEN (j.updated_at - j.started_at) * ((j.rows_estimated - j.rows_scanned)::float8 / j.rows_scanned) END AS eta,
       j.batches,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.pid,
       j.username,
       -- an error can carry what its run read (a value in the message of
       -- an expression's failed cast, the row a trigger refused) from
       -- tables, or rows behind row-level security, that a reader of the
       -- table filled may not read: only its caller's role sees it
       CASE WHEN EXISTS (
                 SELECT 1 FROM pg_catalog.pg_roles r
                 WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
            THEN j.error
            WHEN j.error IS NOT NULL
            THEN 'hidden: the error of a run is shown to members of role '
                 || pg_catalog.quote_ident(j.username) END AS error,
       EXISTS (SELECT 1 FROM safe_backfill_detached d WHERE d.job_id = j.id) AS detached
FROM safe_backfill_jobs j
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
   OR pg_catalog.has_table_privilege(j.relid, 'SELECT');

-- The latest detached run of a column, by the table's OID and the column's
-- number (so a rename of the table, or of the column, does not lose it),
-- among the runs the caller sees in safe_backfill_progress; NULL when none.
-- A security barrier view over the jobs table (which only the functions
-- read) that keeps exactly the rows safe_backfill_progress shows the caller.
CREATE VIEW safe_backfill_detached_runs WITH (security_barrier) AS
SELECT j.id, j.relid, j.attnum
FROM safe_backfill_jobs j
WHERE j.id IN (SELECT p.id FROM safe_backfill_progress p WHERE p.detached);
GRANT SELECT ON safe_backfill_detached_runs TO PUBLIC;

-- A SQL-standard body: parsed here, so the view, the catalogs and the
-- operators it uses are bound now, by OID, and never looked up in the
-- caller's search_path (nor lost when the extension is moved).
CREATE FUNCTION safe_backfill_detached_run(tbl regclass, col name)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN (SELECT pg_catalog.max(r.id)
        FROM safe_backfill_detached_runs r, pg_catalog.pg_attribute a
        WHERE r.relid OPERATOR(pg_catalog.=) tbl::pg_catalog.oid
          AND a.attrelid OPERATOR(pg_catalog.=) tbl::pg_catalog.oid
          AND a.attname OPERATOR(pg_catalog.=) col
          AND a.attnum OPERATOR(pg_catalog.>) 0
          AND NOT a.attisdropped
          AND r.attnum OPERATOR(pg_catalog.=) a.attnum);

COMMENT ON FUNCTION safe_backfill_detached_run(regclass, name) IS
'The id of the latest detached safe_backfill run of a column you may see; NULL if none';

-- ---------------------------------------------------------------------
-- 1.3: safe_update and safe_delete.  The same engine as safe_backfill
-- (batches by primary key, one commit each, lock bounds, progress, resume),
-- changing the rows that match a predicate instead of filling NULLs.
-- ---------------------------------------------------------------------

-- A run is a fill (safe_backfill), an update or a delete.  An update or a
-- delete has no column (attnum 0, column_name NULL), its set list and
-- predicate as the caller gave them (they are matched as text to resume),
-- and may be a dry run, which changes nothing and is never resumed.
ALTER TABLE safe_backfill_jobs
    ADD COLUMN operation text NOT NULL DEFAULT 'fill'
        CHECK (operation IN ('fill', 'update', 'delete')),
    ADD COLUMN set_list text,
    ADD COLUMN where_clause text,
    ADD COLUMN dry_run boolean NOT NULL DEFAULT false,
    ALTER COLUMN column_name DROP NOT NULL,
    DROP CONSTRAINT safe_backfill_jobs_check,
    ADD CONSTRAINT safe_backfill_jobs_check CHECK (
        CASE WHEN operation = 'fill'
             THEN (value_text IS NULL) <> (expression IS NULL)
                  AND column_name IS NOT NULL AND set_list IS NULL AND where_clause IS NULL
             ELSE value_text IS NULL AND expression IS NULL AND attnum = 0
                  AND (set_list IS NULL) = (operation = 'delete')
        END);

-- No SET clause and no SECURITY DEFINER: either would make every CALL atomic
-- and forbid the per-batch COMMIT these procedures exist for.
--
-- set: what follows SET in an UPDATE ('a = expr, b = expr'); "where": a
-- predicate on the row (NULL: every row).  Both are parsed and analysed
-- against the table, never pasted into a statement.
CREATE PROCEDURE safe_update(
    tbl        regclass,
    set        text,
    "where"    text DEFAULT NULL,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    workers integer DEFAULT 1,
    resume  boolean DEFAULT true,
    dry_run boolean DEFAULT false)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_update';

COMMENT ON PROCEDURE safe_update(regclass, text, text, integer, integer, integer, interval, integer, boolean, boolean) IS
'UPDATE the rows that match a predicate in committed batches, without blocking other sessions';

-- "where" is required: deleting every row is what TRUNCATE is for.
CREATE PROCEDURE safe_delete(
    tbl        regclass,
    "where"    text,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    workers integer DEFAULT 1,
    resume  boolean DEFAULT true,
    dry_run boolean DEFAULT false)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_delete';

COMMENT ON PROCEDURE safe_delete(regclass, text, integer, integer, integer, interval, integer, boolean, boolean) IS
'DELETE the rows that match a predicate in committed batches, without blocking other sessions';

-- The progress view says what each run does (operation, last).
CREATE OR REPLACE VIEW safe_backfill_progress WITH (security_barrier) AS
SELECT j.id,
       j.table_name,
       j.column_name,
       CASE WHEN j.state = 'running' AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = j.pid
                   AND ((l.classid = j.relid AND l.objid = j.attnum::pg_catalog.oid AND l.objsubid = 21314)
                        -- or, for a detached run, the lock its worker holds (objsubid 0x5345, keyed by the id)
                        OR (l.classid = (j.id >> 32)::pg_catalog.oid
                            AND l.objid = (j.id & 4294967295)::pg_catalog.oid AND l.objsubid = 21317)))
            THEN 'interrupted' ELSE j.state END AS state,
       j.phase,
       j.rows_done,
       j.rows_estimated,
       pg_catalog.round(100.0 * LEAST(j.rows_scanned, j.rows_estimated)
                        / NULLIF(j.rows_estimated, 0), 1) AS percent,
       pg_catalog.round(j.rows_done / NULLIF(EXTRACT(epoch FROM j.updated_at - j.started_at), 0)) AS rows_per_second,
       CASE WHEN j.state = 'running' AND j.rows_scanned > 0 AND j.rows_estimated > j.rows_scanned
            THEN (j.updated_at - j.started_at) * ((j.rows_estimated - j.rows_scanned)::float8 / j.rows_scanned) END AS eta,
       j.batches,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.pid,
       j.username,
       -- an error can carry what its run read (a value in the message of
       -- an expression's failed cast, the row a trigger refused) from
       -- tables, or rows behind row-level security, that a reader of the
       -- table filled may not read: only its caller's role sees it
       CASE WHEN EXISTS (
                 SELECT 1 FROM pg_catalog.pg_roles r
                 WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
            THEN j.error
            WHEN j.error IS NOT NULL
            THEN 'hidden: the error of a run is shown to members of role '
                 || pg_catalog.quote_ident(j.username) END AS error,
       EXISTS (SELECT 1 FROM safe_backfill_detached d WHERE d.job_id = j.id) AS detached,
       CASE WHEN j.dry_run THEN j.operation || ' (dry run)' ELSE j.operation END AS operation
FROM safe_backfill_jobs j
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
   OR pg_catalog.has_table_privilege(j.relid, 'SELECT');

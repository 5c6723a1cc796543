-- Every run is recorded in safe_backfill_jobs, in the same transaction as
-- each batch, and shown by safe_backfill_progress; a run that did not finish
-- is resumed by calling safe_backfill again with the same arguments.
-- Run ids appear in the NOTICEs and below: this file records its runs in a
-- database of its own, so they are numbered from 1 whatever ran before, and
-- the runs other tests recorded are left alone.  Its queries look at the runs
-- on its own tables only.
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_jobs_runs;
RESET client_min_messages;
CREATE DATABASE regress_jobs_runs;
\c regress_jobs_runs
SET lc_messages = 'C';
CREATE EXTENSION safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE TABLE j (id int PRIMARY KEY, status text);
INSERT INTO j SELECT generate_series(1, 5000);
CALL safe_backfill('j', 'status', 'active', 1000);
SELECT table_name, column_name, state, phase, rows_done, rows_estimated, percent,
       batches >= 5 AS batches, rows_per_second > 0 AS rate, eta, pid = pg_backend_pid() AS pid,
       username = current_user AS username, error, finished_at >= started_at AS finished
FROM safe_backfill_progress WHERE table_name = 'public.j';
SELECT value_text, iteration, last_key FROM safe_backfill_jobs WHERE table_name = 'public.j';

-- an interrupted run (as a crash leaves it: "running", its session gone)
UPDATE j SET status = NULL WHERE id > 3000;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, rows_done, rows_scanned, pid)
VALUES ('j'::regclass, 2, 'public.j', 'status', 'active', 'key', '{4000}', 3000, 4000, 0);
SELECT id, state FROM safe_backfill_progress WHERE table_name = 'public.j' ORDER BY id;
-- the same call resumes it after key 4000 (the sweep then finds 3001-4000)
CALL safe_backfill('j', 'status', 'active', 1000);
SELECT id, state, phase, rows_done FROM safe_backfill_progress WHERE table_name = 'public.j' ORDER BY id;
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM j;

-- another value is another backfill: a new run, nothing resumed
UPDATE j SET status = NULL WHERE id > 4900;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, pid)
VALUES ('j'::regclass, 2, 'public.j', 'status', 'other', 'key', '{4950}', 0);
CALL safe_backfill('j', 'status', 'new', 1000);
SELECT value_text, state, rows_done FROM safe_backfill_jobs WHERE table_name = 'public.j' AND id > 2 ORDER BY id;

-- a batch that fails records the error and the state
CREATE TABLE j_check (id int PRIMARY KEY, status text CHECK (status <> 'bad'));
INSERT INTO j_check SELECT generate_series(1, 100);
CALL safe_backfill('j_check', 'status', 'bad', 10);
SELECT table_name, state, rows_done, error FROM safe_backfill_progress WHERE table_name = 'public.j_check';

-- a role sees only its own runs and those on tables it may read (none yet);
-- nobody but the procedure writes the jobs
CREATE ROLE regress_jobs_reader;
SET ROLE regress_jobs_reader;
SELECT count(*) > 0 AS visible FROM safe_backfill_progress WHERE table_name IN ('public.j', 'public.j_check');
UPDATE safe_backfill_jobs SET last_key = '{1}';
DELETE FROM safe_backfill_jobs;
RESET ROLE;
-- a role allowed to fill the table is recorded as itself
GRANT SELECT, UPDATE ON j TO regress_jobs_reader;
UPDATE j SET status = NULL WHERE id = 1;
SET ROLE regress_jobs_reader;
CALL safe_backfill('j', 'status', 'mine', 1000);
RESET ROLE;
SELECT value_text, state, rows_done, username FROM safe_backfill_jobs WHERE table_name = 'public.j' AND value_text = 'mine';
DROP OWNED BY regress_jobs_reader;
DROP ROLE regress_jobs_reader;

-- a parallel run interrupted after all its ranges were done: straight to the sweep
UPDATE j SET status = NULL WHERE id = 77;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, rows_done, pid)
VALUES ('j'::regclass, 2, 'public.j', 'status', 'parallel', 'key', 4999, 0);
INSERT INTO safe_backfill_job_ranges (job_id, range_no, last_key, done)
SELECT max(id), 1, '{5000}', true FROM safe_backfill_jobs WHERE table_name = 'public.j';
CALL safe_backfill('j', 'status', 'parallel', 1000, workers => 2);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls, count(*) FILTER (WHERE status = 'parallel') AS by_sweep FROM j;
-- no main-pass batch ran (it would have recorded its last key)
SELECT state, last_key FROM safe_backfill_jobs WHERE table_name = 'public.j' AND value_text = 'parallel';

-- a run over rows that are already filled writes no jobs row per empty batch:
-- 300 empty batches would be ~30 kB of WAL (which a standby must replay);
-- what is left is the run's own start and end, and a record about once a second
CREATE TABLE j_filled (id int PRIMARY KEY, status text);
INSERT INTO j_filled SELECT g, 'x' FROM generate_series(1, 3000) g;
VACUUM j_filled;
SELECT pg_current_wal_insert_lsn() AS wal_before \gset
CALL safe_backfill('j_filled', 'status', 'x', 10, target_batch_ms => 0);
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'wal_before') < 8000 AS little_wal,
       batches >= 300 AS every_batch_counted, rows_scanned, state
FROM safe_backfill_jobs WHERE table_name = 'public.j_filled';

\c :regress_db
DROP DATABASE regress_jobs_runs;

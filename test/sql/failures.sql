-- Every failure once the run is recorded ends it as "failed" with its error,
-- wherever it was raised; a run that stops leaves no NULL it claims to have
-- filled; a saved position that can no longer be used is dropped, not fatal.
-- Run ids appear in the NOTICEs and below: this file records its runs in a
-- database of its own, so they are numbered from 1 whatever ran before, and
-- the runs other tests recorded are left alone.  Its queries look at the runs
-- on its own tables only.
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_failures_runs;
RESET client_min_messages;
CREATE DATABASE regress_failures_runs;
\c regress_failures_runs
SET lc_messages = 'C';
CREATE EXTENSION safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

-- a BEFORE UPDATE trigger that skips rows (RETURN NULL): the call fails with
-- the count, the job is not done, the rows it did fill are kept
CREATE TABLE f_skip (id int PRIMARY KEY, status text);
INSERT INTO f_skip SELECT generate_series(1, 1000);
CREATE FUNCTION f_skip_tens() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN IF NEW.id % 10 = 0 THEN RETURN NULL; END IF; RETURN NEW; END$$;
CREATE TRIGGER skip_tens BEFORE UPDATE ON f_skip FOR EACH ROW EXECUTE FUNCTION f_skip_tens();
\set VERBOSITY default
CALL safe_backfill('f_skip', 'status', 'x', 100, set_not_null => true);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls, count(*) FILTER (WHERE status = 'x') AS filled,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'f_skip'::regclass AND attname = 'status') AS not_null
FROM f_skip;
SELECT state, phase, error FROM safe_backfill_progress WHERE table_name = 'public.f_skip';
-- a rule that would skip the same rows is refused before anything is written
-- (clear_errors has the DO INSTEAD cases); the run stays as the trigger left it
DROP TRIGGER skip_tens ON f_skip;
CREATE RULE skip_tens AS ON UPDATE TO f_skip WHERE old.id % 10 = 0 DO INSTEAD NOTHING;
CALL safe_backfill('f_skip', 'status', 'x', 100);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_skip;
DROP RULE skip_tens ON f_skip;
-- once nothing skips them, calling again finishes the job
CALL safe_backfill('f_skip', 'status', 'x', 100);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_skip;
SELECT state, error FROM safe_backfill_progress WHERE table_name = 'public.f_skip' ORDER BY id;

-- an error raised outside a batch (here: by a parallel worker) is recorded
CREATE TABLE f_par (id int PRIMARY KEY, status text CHECK (status <> 'bad'));
INSERT INTO f_par SELECT generate_series(1, 1000);
CALL safe_backfill('f_par', 'status', 'bad', 100, workers => 2);
SELECT state, error FROM safe_backfill_progress WHERE table_name = 'public.f_par';
SELECT count(status) AS filled FROM f_par;

-- a cancel (here the session cancels itself when the fifth batch reaches
-- row 50) is recorded as failed with its message; rows_done counts the rows
-- of every committed transaction, the HOT rounds of the fifth batch before
-- row 50's included (43), and the next call redoes that batch after key 40
CREATE TABLE f_cancel (id int PRIMARY KEY, status text);
INSERT INTO f_cancel SELECT generate_series(1, 100);
CREATE FUNCTION f_cancel_self() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
  IF NEW.id = 50 THEN
    PERFORM pg_cancel_backend(pg_backend_pid());
    PERFORM pg_sleep(60);
  END IF;
  RETURN NEW;
END$$;
CREATE TRIGGER cancel_self BEFORE UPDATE ON f_cancel FOR EACH ROW EXECUTE FUNCTION f_cancel_self();
CALL safe_backfill('f_cancel', 'status', 'x', 10);
SELECT state, error, rows_done FROM safe_backfill_progress WHERE table_name = 'public.f_cancel';
-- and is resumed by the next call
DROP TRIGGER cancel_self ON f_cancel;
CALL safe_backfill('f_cancel', 'status', 'x', 10);
SELECT state, count(*) OVER () AS runs FROM safe_backfill_progress WHERE table_name = 'public.f_cancel';
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_cancel;

-- a saved key that no longer parses (the key's type changed): dropped with a
-- NOTICE, the run starts over and finishes
CREATE TABLE f_stale (id int PRIMARY KEY, status text);
INSERT INTO f_stale SELECT generate_series(1, 500);
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, pid)
VALUES ('f_stale'::regclass, 2, 'public.f_stale', 'status', 'x', 'key', '{not-a-number}', 0);
CALL safe_backfill('f_stale', 'status', 'x', 100);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_stale;
SELECT state, phase, last_key FROM safe_backfill_jobs WHERE table_name = 'public.f_stale';
-- the same for the saved ranges of a parallel run
UPDATE f_stale SET status = NULL;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, pid)
VALUES ('f_stale'::regclass, 2, 'public.f_stale', 'status', 'y', 'key', 0);
INSERT INTO safe_backfill_job_ranges (job_id, range_no, last_key, end_key)
SELECT max(id), 1, '{1,2}', NULL FROM safe_backfill_jobs WHERE table_name = 'public.f_stale';
CALL safe_backfill('f_stale', 'status', 'y', 100, workers => 2);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_stale;
SELECT count(*) AS stale_ranges FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
WHERE j.table_name = 'public.f_stale' AND r.last_key = '{1,2}';

-- resume => false starts an unfinished run over on purpose
UPDATE f_stale SET status = NULL WHERE id <= 100;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, pid)
VALUES ('f_stale'::regclass, 2, 'public.f_stale', 'status', 'z', 'key', '{400}', 0);
CALL safe_backfill('f_stale', 'status', 'z', 1000, resume => false);
SELECT count(*) FILTER (WHERE status = 'z') AS filled, count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_stale;
-- its saved key is gone (a single batch of 1000 records none of its own)
SELECT state, last_key FROM safe_backfill_jobs WHERE table_name = 'public.f_stale' AND value_text = 'z';

-- workers => n on a resumed serial run is ignored, and says so
UPDATE f_stale SET status = NULL WHERE id > 400;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, pid)
VALUES ('f_stale'::regclass, 2, 'public.f_stale', 'status', 'w', 'key', '{400}', 0);
CALL safe_backfill('f_stale', 'status', 'w', 100, workers => 2);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_stale;

-- workers and resume refuse NULL like every other argument
CALL safe_backfill('f_stale', 'status', 'v', workers => NULL);
CALL safe_backfill('f_stale', 'status', 'v', resume => NULL);
SELECT count(*) FILTER (WHERE status = 'v') AS changed FROM f_stale;

DROP TABLE f_skip, f_par, f_cancel, f_stale;
DROP FUNCTION f_skip_tens(), f_cancel_self();

-- a parallel run cancelled mid-run: the workers' committed batches count in
-- the failed job's rows_done (they are in its ranges, not yet in the job row),
-- and the resumed run ends with every row it filled counted once
CREATE TABLE f_par_cancel (id int PRIMARY KEY, status text);
INSERT INTO f_par_cancel SELECT generate_series(1, 20000);
CREATE TABLE f_par_leader (pid int);
INSERT INTO f_par_leader VALUES (pg_backend_pid());
CREATE FUNCTION f_par_cancel_leader() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
  IF NEW.id = 15000 THEN
    PERFORM pg_cancel_backend(pid) FROM public.f_par_leader;
    PERFORM pg_sleep(60);
  END IF;
  RETURN NEW;
END$$;
CREATE TRIGGER cancel_leader BEFORE UPDATE ON f_par_cancel FOR EACH ROW EXECUTE FUNCTION f_par_cancel_leader();
CALL safe_backfill('f_par_cancel', 'status', 'x', 500, workers => 2);
SELECT state, error, rows_done = (SELECT count(status) FROM f_par_cancel) AS rows_done_counts_workers,
       rows_done > 0 AS some_filled
FROM safe_backfill_progress WHERE table_name = 'public.f_par_cancel';
DROP TRIGGER cancel_leader ON f_par_cancel;
SET client_min_messages = warning;
CALL safe_backfill('f_par_cancel', 'status', 'x', 500, workers => 2);
RESET client_min_messages;
SELECT state, rows_done, count(*) OVER () AS runs FROM safe_backfill_progress WHERE table_name = 'public.f_par_cancel';
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM f_par_cancel;
DROP TABLE f_par_cancel, f_par_leader;
DROP FUNCTION f_par_cancel_leader();

-- a cancel that arrives while a failure is being recorded (here sent by the
-- failing trigger itself, just before its error, as a second Ctrl-C would
-- arrive) no longer cancels the record: the job is failed with the error
-- that stopped it, that error reaches the caller, the column is free
CREATE TABLE f_twice (id int PRIMARY KEY, status text);
INSERT INTO f_twice SELECT generate_series(1, 1000);
CREATE FUNCTION f_twice_fail() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
  IF NEW.id = 500 THEN
    RAISE EXCEPTION 'f_twice failed (cancel sent: %)', pg_cancel_backend(pg_backend_pid());
  END IF;
  RETURN NEW;
END$$;
CREATE TRIGGER twice BEFORE UPDATE ON f_twice FOR EACH ROW EXECUTE FUNCTION f_twice_fail();
CALL safe_backfill('f_twice', 'status', 'x', 100);
SELECT state, error, rows_done FROM safe_backfill_progress WHERE table_name = 'public.f_twice';
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
DROP TRIGGER twice ON f_twice;
CALL safe_backfill('f_twice', 'status', 'x', 100);
SELECT state, rows_done, count(*) OVER () AS runs FROM safe_backfill_progress WHERE table_name = 'public.f_twice';
DROP TABLE f_twice;
DROP FUNCTION f_twice_fail();

\c :regress_db
DROP DATABASE regress_failures_runs;

-- safe_backfill.job_retention: when a run starts, the records of runs that
-- finished (done or failed) longer ago than that are deleted, with their
-- parallel ranges; unfinished runs are kept (they may be resumed).  Set by
-- superusers only (it deletes every role's records); 0 keeps them forever.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS safe_backfill;
RESET client_min_messages;
LOAD 'safe_backfill';
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
SHOW safe_backfill.job_retention;

CREATE TABLE jr (id int PRIMARY KEY, a text, b text, c text, d text, e text);
INSERT INTO jr SELECT generate_series(1, 4000);
CALL safe_backfill('jr', 'a', 'x'::text, 1000);
CALL safe_backfill('jr', 'b', 'x'::text, 1000, workers => 2);
ALTER TABLE jr ADD CONSTRAINT no_y CHECK (c IS DISTINCT FROM 'y') NOT VALID;
CALL safe_backfill('jr', 'c', 'y'::text, 1000);
-- an interrupted run, as a crash leaves it
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text, iteration, pid)
VALUES ('jr'::regclass, 5, 'public.jr', 'd', 'x', 'key', 0);
SELECT column_name, state FROM safe_backfill_jobs WHERE table_name = 'public.jr' ORDER BY id;
SELECT id AS b_id FROM safe_backfill_jobs WHERE table_name = 'public.jr' AND column_name = 'b' \gset
SELECT count(*) > 0 AS ranges FROM safe_backfill_job_ranges WHERE job_id = :b_id;
-- a, b and the interrupted d are 40 days old, c (failed) 10 days
UPDATE safe_backfill_jobs SET started_at = now() - interval '40 days',
       updated_at = now() - interval '40 days',
       finished_at = CASE WHEN state <> 'running' THEN now() - interval '40 days' END
WHERE table_name = 'public.jr' AND column_name IN ('a', 'b', 'd');
UPDATE safe_backfill_jobs SET finished_at = now() - interval '10 days'
WHERE table_name = 'public.jr' AND column_name = 'c';

-- 0 keeps every record
SET safe_backfill.job_retention = 0;
CALL safe_backfill('jr', 'e', 'x'::text, 1000);
SELECT column_name, state FROM safe_backfill_jobs WHERE table_name = 'public.jr' ORDER BY id;

-- a role that may not set it cannot, and its runs apply the superuser's
CREATE ROLE regress_jr_user;
GRANT SELECT, UPDATE ON jr TO regress_jr_user;
SET ROLE regress_jr_user;
SET safe_backfill.job_retention = '1s';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- 30 days (the default): a new run, by any role, deletes a and b (and b's
-- ranges); c (10 days) and the unfinished d stay.  The statement runs as the
-- jobs table's owner, locked down: the caller's operators are not used.
RESET safe_backfill.job_retention;
CREATE SCHEMA jr_evil;
GRANT USAGE ON SCHEMA jr_evil TO regress_jr_user;
CREATE FUNCTION jr_evil.lt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'hostile operator ran as %', current_user; END $$;
CREATE OPERATOR jr_evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = jr_evil.lt);
CREATE FUNCTION jr_evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'hostile function ran as %', current_user; END $$;
UPDATE jr SET e = NULL WHERE id <= 10;
SET ROLE regress_jr_user;
SET search_path = jr_evil, pg_catalog, public;
CALL public.safe_backfill('public.jr', 'e', 'x'::text, 1000);
RESET search_path;
RESET ROLE;
SELECT column_name, state FROM safe_backfill_jobs WHERE table_name = 'public.jr' ORDER BY id;
SELECT count(*) AS ranges FROM safe_backfill_job_ranges WHERE job_id = :b_id;

-- a shorter retention deletes the failed run of 10 days too
SET safe_backfill.job_retention = '1d';
UPDATE jr SET e = NULL WHERE id <= 10;
CALL safe_backfill('jr', 'e', 'x'::text, 1000);
SELECT column_name, state FROM safe_backfill_jobs WHERE table_name = 'public.jr' ORDER BY id;
RESET safe_backfill.job_retention;

DELETE FROM safe_backfill_jobs WHERE table_name = 'public.jr';
DROP TABLE jr;
DROP SCHEMA jr_evil CASCADE;
DROP ROLE regress_jr_user;

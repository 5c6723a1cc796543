-- safe_backfill_forget(tbl, older_than): a role deletes the records of its
-- own finished runs (done or failed), with their ranges; another role's
-- records and unfinished runs (which may be resumed) stay.  It runs as the
-- jobs table's owner, locked down like every statement on it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS safe_backfill;
RESET client_min_messages;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
CREATE ROLE regress_jf_a;
CREATE ROLE regress_jf_b;
CREATE TABLE jf (id int PRIMARY KEY, a text, b text, c text);
INSERT INTO jf SELECT generate_series(1, 4000);
CREATE TABLE jf2 (id int PRIMARY KEY, a text);
INSERT INTO jf2 SELECT generate_series(1, 10);
GRANT SELECT, UPDATE ON jf, jf2 TO regress_jf_a, regress_jf_b;
-- an operator the caller's search_path would find first
CREATE SCHEMA jf_evil;
GRANT USAGE ON SCHEMA jf_evil TO regress_jf_a;
CREATE FUNCTION jf_evil.eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'hostile operator ran as %', current_user; END $$;
CREATE OPERATOR jf_evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = jf_evil.eq);
ALTER TABLE jf ADD CONSTRAINT no_y CHECK (c IS DISTINCT FROM 'y') NOT VALID;
SET ROLE regress_jf_a;
CALL safe_backfill('jf', 'a', 'x'::text, 1000, workers => 2);
CALL safe_backfill('jf', 'c', 'y'::text, 1000);
CALL safe_backfill('jf2', 'a', 'x'::text);
RESET ROLE;
SET ROLE regress_jf_b;
CALL safe_backfill('jf', 'b', 'x'::text, 1000);
RESET ROLE;
-- an interrupted run of A's, as a crash leaves it
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text, iteration, pid, username)
VALUES ('jf'::regclass, 4, 'public.jf', 'c', 'z', 'key', 0, 'regress_jf_a');
SELECT id AS a_id FROM safe_backfill_jobs WHERE table_name = 'public.jf' AND column_name = 'a' \gset
SELECT count(*) > 0 AS ranges FROM safe_backfill_job_ranges WHERE job_id = :a_id;

-- older_than: none of them finished a day ago
SET ROLE regress_jf_a;
SELECT safe_backfill_forget(older_than => '1 day');
-- one table: jf2's run only
SELECT safe_backfill_forget('jf2');
SELECT table_name, column_name, username, state FROM safe_backfill_progress
WHERE table_name IN ('public.jf', 'public.jf2') ORDER BY id;
-- then every finished run of A's, but not B's nor the unfinished one
SET search_path = jf_evil, pg_catalog, public;
SELECT public.safe_backfill_forget();
RESET search_path;
RESET ROLE;
SELECT table_name, column_name, username, state FROM safe_backfill_jobs
WHERE table_name IN ('public.jf', 'public.jf2') ORDER BY id;
SELECT count(*) AS ranges FROM safe_backfill_job_ranges WHERE job_id = :a_id;
-- B deletes its own records only, none of A's
SET ROLE regress_jf_b;
SELECT safe_backfill_forget();
RESET ROLE;
SELECT table_name, column_name, username, state FROM safe_backfill_jobs
WHERE table_name IN ('public.jf', 'public.jf2') ORDER BY id;
SELECT safe_backfill_forget(older_than => NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

DELETE FROM safe_backfill_jobs WHERE table_name IN ('public.jf', 'public.jf2');
DROP TABLE jf, jf2;
DROP SCHEMA jf_evil CASCADE;
DROP ROLE regress_jf_a, regress_jf_b;

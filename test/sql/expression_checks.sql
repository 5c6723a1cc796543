-- expression => '...': what is checked before the first batch, what a run
-- does when the expression releases the column's lock, and which row an
-- error names.
-- Run ids appear in the NOTICEs: this file records its runs in a database of
-- its own, so they are numbered from 1 whatever ran before, and the runs
-- other tests recorded are left alone.
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_expression_checks_runs;
RESET client_min_messages;
CREATE DATABASE regress_expression_checks_runs;
\c regress_expression_checks_runs
SET lc_messages = 'C';
CREATE EXTENSION safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
SET safe_backfill.hot_rounds = 1;
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------
-- an expression that calls pg_advisory_unlock_all() releases the lock that
-- keeps a second run off the column: the run stops after that batch,
-- which is rolled back
CREATE TABLE ec_lock (id int PRIMARY KEY, c int);
INSERT INTO ec_lock SELECT g FROM generate_series(1, 30) g;
CREATE FUNCTION ec_unlock(int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	IF $1 = 15 THEN
		PERFORM pg_advisory_unlock_all();
	END IF;
	RETURN $1;
END $$;
CALL safe_backfill('ec_lock', 'c', expression => 'ec_unlock(id)', batch_size => 10);
SELECT count(c) AS filled FROM ec_lock;
SELECT state, error FROM safe_backfill_jobs WHERE table_name = 'public.ec_lock';
SELECT count(*) AS advisory_locks_left FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();
DROP TABLE ec_lock;
DROP FUNCTION ec_unlock(int);

-- ---------------------------------------------------------------------
-- a caller with column privileges only: an expression run reads each
-- row's tableoid (and ctid), checked before any row changes
CREATE ROLE regress_ec_caller;
CREATE TABLE ec_cols (id int PRIMARY KEY, name text, secret text, c text);
INSERT INTO ec_cols SELECT g, 'n' || g, 's' || g FROM generate_series(1, 20) g;
GRANT SELECT (id, name, c, ctid), UPDATE (c) ON ec_cols TO regress_ec_caller;
GRANT SELECT, INSERT, UPDATE ON safe_backfill_jobs TO regress_ec_caller;
GRANT USAGE ON SEQUENCE safe_backfill_jobs_id_seq TO regress_ec_caller;
SET ROLE regress_ec_caller;
CALL safe_backfill('ec_cols', 'c', expression => 'upper(name)', batch_size => 5);
RESET ROLE;
SELECT count(c) AS filled FROM ec_cols;
-- with SELECT on them, it runs; a column the caller may not read stays
-- out of reach
GRANT SELECT (tableoid) ON ec_cols TO regress_ec_caller;
SET ROLE regress_ec_caller;
CALL safe_backfill('ec_cols', 'c', expression => 'secret', batch_size => 5);
CALL safe_backfill('ec_cols', 'c', expression => '(SELECT s.secret FROM ec_cols s WHERE s.id = ec_cols.id)', batch_size => 5);
CALL safe_backfill('ec_cols', 'c', expression => 'upper(name)', batch_size => 5);
RESET ROLE;
SELECT count(*) FILTER (WHERE c = upper(name)) AS right, count(*) AS rows FROM ec_cols;
DROP TABLE ec_cols;
REVOKE ALL ON safe_backfill_jobs FROM regress_ec_caller;
REVOKE ALL ON SEQUENCE safe_backfill_jobs_id_seq FROM regress_ec_caller;
DROP ROLE regress_ec_caller;

-- ---------------------------------------------------------------------
-- void is no value: refused before any row changes, as a value or as an
-- expression
CREATE TABLE ec_void (id int PRIMARY KEY, c text);
INSERT INTO ec_void SELECT g FROM generate_series(1, 5) g;
\set VERBOSITY default
CALL safe_backfill('ec_void', 'c', pg_sleep(0));
CALL safe_backfill('ec_void', 'c', expression => 'pg_sleep(0)');
CREATE FUNCTION ec_nothing(int) RETURNS void LANGUAGE sql AS '';
CALL safe_backfill('ec_void', 'c', expression => 'ec_nothing(id)');
\set VERBOSITY terse
SELECT count(c) AS filled FROM ec_void;
DROP FUNCTION ec_nothing(int);
DROP TABLE ec_void;

-- ---------------------------------------------------------------------
-- the row an error names is the row that raised it: first_name::int fails
-- first on PATRICIA (key 2), while the first row in key order that fails
-- with the same SQLSTATE (SUSAN, key 1) fails later in the batch's plan
CREATE TABLE ec_rows (id int PRIMARY KEY, first_name text, n int);
INSERT INTO ec_rows VALUES (1, 'SUSAN', NULL), (2, 'PATRICIA', NULL), (3, '3', NULL);
-- the batch reads PATRICIA first
UPDATE ec_rows SET first_name = 'SUSAN' WHERE id = 1;
\set VERBOSITY default
CALL safe_backfill('ec_rows', 'n', expression => 'first_name::int', batch_size => 10);
SELECT count(n) AS filled FROM ec_rows;
-- a subquery returning more than one row names its row too
CREATE TABLE ec_many (k int, v int);
INSERT INTO ec_many VALUES (1, 1), (2, 2), (2, 3);
CREATE TABLE ec_sub (id int PRIMARY KEY, n int);
INSERT INTO ec_sub VALUES (1, NULL), (2, NULL), (3, NULL);
CALL safe_backfill('ec_sub', 'n', expression => '(SELECT m.v FROM ec_many m WHERE m.k = ec_sub.id)', batch_size => 10);
\set VERBOSITY terse
SELECT count(n) AS filled FROM ec_sub;
DROP TABLE ec_rows, ec_many, ec_sub;

-- ---------------------------------------------------------------------
-- a function that reads a temporary table: workers cannot read this
-- session's temporary tables, the run stays in this session
CREATE TABLE ec_tmp (id int PRIMARY KEY, c int);
INSERT INTO ec_tmp SELECT g FROM generate_series(1, 20000) g;
CREATE TEMP TABLE ec_lookup (id int PRIMARY KEY, v int);
INSERT INTO ec_lookup SELECT g, g * 10 FROM generate_series(1, 20000) g;
CREATE FUNCTION ec_lookup_v(int) RETURNS int LANGUAGE sql STABLE AS
  $$SELECT l.v FROM ec_lookup l WHERE l.id = $1$$;
CALL safe_backfill('ec_tmp', 'c', expression => 'ec_lookup_v(id)', workers => 2, batch_size => 1000);
SELECT state, error FROM safe_backfill_jobs WHERE table_name = 'public.ec_tmp';
-- the advice: workers => 1
CALL safe_backfill('ec_tmp', 'c', expression => 'ec_lookup_v(id)', workers => 1, batch_size => 1000);
SELECT count(*) FILTER (WHERE c = id * 10) AS right, count(*) AS rows FROM ec_tmp;
DROP TABLE ec_tmp;
DROP FUNCTION ec_lookup_v(int);
DROP TABLE ec_lookup;

\c :regress_db
DROP DATABASE regress_expression_checks_runs;

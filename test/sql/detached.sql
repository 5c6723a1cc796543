-- safe_backfill_start makes every check of safe_backfill before anything
-- starts: each bad call raises its error to the caller, records no run and
-- starts no worker (the table is shown unchanged after each one).  Then a
-- run started and waited for; safe_backfill_wait and safe_backfill_cancel
-- refuse unknown runs, other roles and a transaction block.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
\set SHOW_CONTEXT never
-- run ids from here on do not depend on the runs of the files before
SELECT setval(pg_get_serial_sequence('safe_backfill_jobs', 'id'), 100000) IS NOT NULL AS ids_set;

CREATE TABLE det (id int PRIMARY KEY, status varchar(5), n int);
INSERT INTO det SELECT generate_series(1, 100);
CREATE VIEW det_unchanged AS
    SELECT count(status) AS status_set, count(n) AS n_set,
           (SELECT count(*) FROM safe_backfill_jobs WHERE table_name = 'public.det') AS runs,
           (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'safe_backfill detached') AS workers
    FROM det;

SELECT safe_backfill_start(NULL, 'status', 'x');
SELECT safe_backfill_start('det', NULL, 'x');
SELECT safe_backfill_start('det', 'status');
SELECT safe_backfill_start('det', 'status', 'x', expression => 'id::text');
SELECT safe_backfill_start('det', 'status', 'x', batch_size => 0);
SELECT safe_backfill_start('det', 'status', 'x', workers => 65);
SELECT safe_backfill_start('det', 'status', 'x', pause_ms => -1);
SELECT safe_backfill_start('det', 'status', 'x', max_replica_lag => '2 hours');
SELECT safe_backfill_start('det', 'status', 'x', resume => NULL);
SELECT safe_backfill_start('det', 'nope', 'x');
SELECT safe_backfill_start('det', 'status', 'too long for varchar(5)');
SELECT safe_backfill_start('det', 'n', 'not a number');
SELECT safe_backfill_start('det', 'n', expression => 'no_such_column + 1');
SELECT * FROM det_unchanged;

-- a role that may not update the table, or does not own it for set_not_null
CREATE ROLE det_reader;
GRANT SELECT ON det TO det_reader;
SET ROLE det_reader;
SELECT safe_backfill_start('det', 'status', 'x');
RESET ROLE;
GRANT UPDATE ON det TO det_reader;
SET ROLE det_reader;
SELECT safe_backfill_start('det', 'status', 'x', set_not_null => true);
RESET ROLE;
SELECT * FROM det_unchanged;

-- a security-restricted operation (here a materialized view's query) may not
-- start a run that outlives it
CREATE MATERIALIZED VIEW det_mv AS SELECT safe_backfill_start('det', 'status', 'x') AS run;
-- inside a SECURITY DEFINER function the run is the owner's, and its worker
-- connects as the owner, who must be able to log in (the caller could not
-- become the owner: a worker connected as the caller could SET ROLE back)
CREATE ROLE det_owner NOLOGIN;
GRANT SELECT, UPDATE ON det TO det_owner;
CREATE FUNCTION det_start_as_owner() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT safe_backfill_start('det', 'status', 'x') $$;
ALTER FUNCTION det_start_as_owner() OWNER TO det_owner;
SELECT det_start_as_owner();
DROP FUNCTION det_start_as_owner();
SELECT * FROM det_unchanged;

-- a run started, then waited for: it filled every row and is done
SELECT safe_backfill_start('det', 'n', 7, batch_size => 30) AS run \gset
CALL safe_backfill_wait(:run);
SELECT count(*) FILTER (WHERE n = 7) AS filled, count(*) AS rows FROM det;
SELECT state, phase, rows_done, detached FROM safe_backfill_progress WHERE id = :run;
-- waiting again returns at once; cancelling a finished run does nothing
CALL safe_backfill_wait(:run);
SELECT safe_backfill_cancel(:run);

-- another role may neither wait for it nor cancel it
SET ROLE det_reader;
CALL safe_backfill_wait(:run);
SELECT safe_backfill_cancel(:run);
RESET ROLE;

-- unknown runs, NULL, a bad timeout, a transaction block
CALL safe_backfill_wait(-1);
SELECT safe_backfill_cancel(-1);
CALL safe_backfill_wait(NULL);
CALL safe_backfill_wait(:run, timeout => '-1 s');
BEGIN;
CALL safe_backfill_wait(:run);
ROLLBACK;

-- a run of safe_backfill (not detached) is not waited for
CREATE TABLE det_fg (id int PRIMARY KEY, status text);
INSERT INTO det_fg SELECT generate_series(1, 10);
SET client_min_messages = warning;
CALL safe_backfill('det_fg', 'status', 'x');
RESET client_min_messages;
SELECT id AS fg_run FROM safe_backfill_jobs WHERE table_name = 'public.det_fg' \gset
CALL safe_backfill_wait(:fg_run);

SELECT safe_backfill_forget('det') + safe_backfill_forget('det_fg') AS forgotten;
DROP TABLE det_fg;
DROP VIEW det_unchanged;
DROP TABLE det;
DROP ROLE det_reader;
DROP ROLE det_owner;

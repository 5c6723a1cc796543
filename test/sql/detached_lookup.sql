-- safe_backfill_detached_run(tbl, col) finds the latest detached run of a
-- column by the table's OID and the column's number: after a rename of the
-- table it is still found; a role sees only the runs safe_backfill_progress
-- shows it; nothing in the caller's search_path changes the answer.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
\set SHOW_CONTEXT never
-- run ids from here on do not depend on the runs of the files before
SELECT setval(pg_get_serial_sequence('safe_backfill_jobs', 'id'), 200000) IS NOT NULL AS ids_set;

CREATE TABLE dlk (id int PRIMARY KEY, a int, b int);
INSERT INTO dlk SELECT generate_series(1, 100);

-- no run yet: NULL
SELECT safe_backfill_detached_run('dlk', 'a') IS NULL AS none_yet;
-- a run of safe_backfill (not detached) is not one
SET client_min_messages = warning;  -- its summary has timings
CALL safe_backfill('dlk', 'b', 1);
RESET client_min_messages;
SELECT safe_backfill_detached_run('dlk', 'b') IS NULL AS not_detached;

SELECT safe_backfill_start('dlk', 'a', 7, batch_size => 30) AS run \gset
SELECT safe_backfill_detached_run('dlk', 'a') = :run AS found_queued;
CALL safe_backfill_wait(:run);
SELECT safe_backfill_detached_run('dlk', 'a') = :run AS found_done;
SELECT count(*) FILTER (WHERE a = 7) AS filled FROM dlk;
-- another column, or a column that does not exist: none
SELECT safe_backfill_detached_run('dlk', 'b') IS NULL AS other_column,
       safe_backfill_detached_run('dlk', 'nope') IS NULL AS no_column;

-- renamed table (and schema moved): still found, by OID
CREATE SCHEMA dlk_s;
ALTER TABLE dlk RENAME TO dlk_renamed;
ALTER TABLE dlk_renamed SET SCHEMA dlk_s;
SELECT safe_backfill_detached_run('dlk_s.dlk_renamed', 'a') = :run AS found_after_rename;
-- the progress view still shows the name the run had
SELECT table_name, detached FROM safe_backfill_progress WHERE id = :run;

-- a role that may not read the table and did not start the run sees nothing,
-- as in safe_backfill_progress; given SELECT on the table, it sees the run
CREATE ROLE dlk_other;
GRANT USAGE ON SCHEMA dlk_s TO dlk_other;
SET ROLE dlk_other;
SELECT safe_backfill_detached_run('dlk_s.dlk_renamed', 'a') IS NULL AS hidden,
       (SELECT count(*) FROM safe_backfill_progress WHERE id = :run) AS in_progress_view;
SELECT count(*) FROM safe_backfill_detached_runs;
RESET ROLE;
GRANT SELECT ON dlk_s.dlk_renamed TO dlk_other;
SET ROLE dlk_other;
SELECT safe_backfill_detached_run('dlk_s.dlk_renamed', 'a') = :run AS seen_with_select;
-- the jobs table itself stays closed
SELECT count(*) FROM safe_backfill_jobs;
RESET ROLE;

-- an attacker's search_path: a view of the same name and a max() of its own
-- in a schema searched first change nothing (the body was bound at CREATE)
CREATE SCHEMA dlk_evil;
CREATE VIEW dlk_evil.safe_backfill_detached_runs AS
    SELECT 424242::bigint AS id, 'dlk_s.dlk_renamed'::regclass::oid AS relid, 2 AS attnum;
CREATE FUNCTION dlk_evil.max(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT 424242::bigint';
SET search_path = dlk_evil, public, pg_catalog;
SELECT safe_backfill_detached_run('dlk_s.dlk_renamed', 'a') = :run AS not_fooled;
RESET search_path;

DROP SCHEMA dlk_evil CASCADE;
DROP TABLE dlk_s.dlk_renamed;
DROP SCHEMA dlk_s;
DROP OWNED BY dlk_other;
DROP ROLE dlk_other;

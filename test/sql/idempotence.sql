-- Re-running is safe: only NULLs are written, so a second CALL writes nothing
-- and a CALL after an interrupted one finishes the job.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE TABLE again (id int PRIMARY KEY, v text);
INSERT INTO again SELECT generate_series(1, 500);
CALL safe_backfill('again', 'v', 'first', 100);
CREATE TEMP TABLE before AS SELECT id, xmin::text AS x FROM again;
CALL safe_backfill('again', 'v', 'second', 100);
-- no row was rewritten: every row keeps the version of the first run
SELECT count(*) AS rewritten FROM again a JOIN before b USING (id) WHERE a.xmin::text <> b.x;
SELECT v, count(*) FROM again GROUP BY v;

-- half done by hand (as an interrupted run leaves it): only the rest is written
CREATE TABLE half (id int PRIMARY KEY, v text);
INSERT INTO half SELECT generate_series(1, 400);
UPDATE half SET v = 'earlier' WHERE id <= 200;
CALL safe_backfill('half', 'v', 'later', 50);
SELECT v, count(*), min(id), max(id) FROM half GROUP BY v ORDER BY v;

-- a column emptied again is refilled
UPDATE half SET v = NULL WHERE id % 100 = 0;
CALL safe_backfill('half', 'v', 'again', 50);
SELECT v, count(*) FROM half GROUP BY v ORDER BY v;

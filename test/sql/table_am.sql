-- Tables of another access method than heap: space reuse (heap pruning and
-- the free space map) is skipped, with a NOTICE once per run; walking by
-- block ranges is refused before anything changes.  sb_heap2 has heap's
-- handler but is not heap itself, as amcheck would see it too.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
CREATE ACCESS METHOD sb_heap2 TYPE TABLE HANDLER heap_tableam_handler;

-- with a primary key: filled by key, no space reuse, said once
CREATE TABLE am_keyed (id int PRIMARY KEY, v text) USING sb_heap2;
INSERT INTO am_keyed SELECT generate_series(1, 3000);
CALL safe_backfill('am_keyed', 'v', 'x', 500);
SELECT v, count(*) FROM am_keyed GROUP BY v;

-- without one: refused, nothing changed, nothing recorded
CREATE TABLE am_nokey (n int, v text) USING sb_heap2;
INSERT INTO am_nokey SELECT generate_series(1, 3000);
\set VERBOSITY default
CALL safe_backfill('am_nokey', 'v', 'x', 500);
\echo :SQLSTATE
\set VERBOSITY terse
SELECT count(v) AS filled FROM am_nokey;
SELECT count(*) AS runs FROM safe_backfill_jobs WHERE relid = 'am_nokey'::regclass;
-- by key, but forced to walk block ranges: refused too
SET safe_backfill.iteration = 'ctid';
UPDATE am_keyed SET v = NULL WHERE id <= 10;
CALL safe_backfill('am_keyed', 'v', 'y', 500);
RESET safe_backfill.iteration;
SELECT count(*) AS still_null FROM am_keyed WHERE v IS NULL;

-- a partitioned table with a key and one leaf of each kind: filled by key
-- (by key, each heap leaf reuses space; the other is said once)
CREATE TABLE am_parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE am_parted_heap PARTITION OF am_parted FOR VALUES FROM (1) TO (2001);
CREATE TABLE am_parted_heap2 PARTITION OF am_parted FOR VALUES FROM (2001) TO (4001) USING sb_heap2;
INSERT INTO am_parted SELECT generate_series(1, 4000);
CALL safe_backfill('am_parted', 'v', 'p', 500);
SELECT tableoid::regclass, v, count(*) FROM am_parted GROUP BY 1, 2 ORDER BY 1;
-- a partitioned table without a key, one leaf not heap: refused
CREATE TABLE am_parted_nokey (n int, v text) PARTITION BY RANGE (n);
CREATE TABLE am_parted_nokey_heap PARTITION OF am_parted_nokey FOR VALUES FROM (1) TO (101);
CREATE TABLE am_parted_nokey_heap2 PARTITION OF am_parted_nokey FOR VALUES FROM (101) TO (201) USING sb_heap2;
INSERT INTO am_parted_nokey SELECT generate_series(1, 200);
CALL safe_backfill('am_parted_nokey', 'v', 'p', 50);
SELECT count(v) AS filled FROM am_parted_nokey;

DROP TABLE am_keyed, am_nokey, am_parted, am_parted_nokey;
DROP ACCESS METHOD sb_heap2;

-- Each batch is its own transaction: rows of different batches carry
-- different xmin, and a batch's rows share one.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
-- one transaction per batch: no HOT rounds, whose transactions hot_rounds.sql
-- and commit_mode.sql show
SET safe_backfill.hot_rounds = 1;
\set VERBOSITY terse

CREATE TABLE c_pk (id int PRIMARY KEY);
INSERT INTO c_pk SELECT generate_series(1, 1000);
ALTER TABLE c_pk ADD COLUMN v text;
CALL safe_backfill('c_pk', 'v', 'x', 100);
-- ten batches, exactly 100 rows each, in key order
SELECT count(DISTINCT xmin::text) AS transactions FROM c_pk;
SELECT min(id), max(id), count(*) FROM c_pk GROUP BY xmin::text ORDER BY min(id);

-- without a primary key the batches are block ranges, each its own commit
CREATE TABLE c_ctid (n int, pad text);
INSERT INTO c_ctid SELECT g, repeat('x', 200) FROM generate_series(1, 1000) g;
ALTER TABLE c_ctid ADD COLUMN v text;
SELECT pg_relation_size('c_ctid') / current_setting('block_size')::int AS blocks;
CALL safe_backfill('c_ctid', 'v', 'x', 100);
SELECT count(DISTINCT xmin::text) >= 9 AS many_transactions, count(v) FROM c_ctid;

-- pause_ms sleeps between batches and changes nothing else
CREATE TABLE c_pause (id int PRIMARY KEY);
INSERT INTO c_pause SELECT generate_series(1, 30);
ALTER TABLE c_pause ADD COLUMN v text;
CALL safe_backfill('c_pause', 'v', 'x', 10, pause_ms => 5);
SELECT count(DISTINCT xmin::text) AS transactions, count(v) FROM c_pause;

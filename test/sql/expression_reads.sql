-- expression => '...': a batch reads each row it fills once.  The batch's
-- UPDATE computes the expression in a LATERAL subquery over the row the
-- UPDATE itself reads (sqlgen.c's sql_compute_rows), not in a second scan
-- of the table joined back to it by ctid, which fetched every row twice and
-- rescanned a TID Scan (a relation size lookup) for each.
-- Facts asserted: the table's heap block accesses per filled row in HOT
-- rounds (each fetch of a row by its tid is one), by key and by block
-- ranges; the values are those of a plain UPDATE, with HOT rounds and
-- without; NULL results stay unwritten; a volatile expression is called
-- once per row.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

-- half-full pages: every update of the column is HOT on its own page, so a
-- row costs the same block accesses in every round
CREATE FUNCTION reads_seed(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, name text, parent_id int)'
                 ' WITH (fillfactor = 50, autovacuum_enabled = off)', name);
  EXECUTE format('INSERT INTO %I SELECT g, ''Name '' || g, 1 + g %% 50 FROM generate_series(1, 4000) g', name);
  EXECUTE format('ALTER TABLE %I ADD COLUMN c text', name);
END $$;
CREATE TABLE reads_parent (id int PRIMARY KEY, region text);
INSERT INTO reads_parent SELECT g, CASE WHEN g = 7 THEN NULL ELSE 'Region ' || g END
FROM generate_series(1, 50) g;
SELECT reads_seed('reads_key'), reads_seed('reads_ctid'), reads_seed('reads_one_round');
VACUUM ANALYZE reads_key, reads_ctid, reads_one_round, reads_parent;
SELECT xmin AS insert_xmin FROM reads_key LIMIT 1 \gset

-- the statistics of this session's committed work, read afresh (see
-- hot_rounds.sql: 14 sends them when the session has been idle 500 ms)
CREATE FUNCTION reads_flush_stats() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'SELECT pg_catalog.pg_stat_force_next_flush()';
  ELSE
    PERFORM pg_sleep(0.6);
  END IF;
END $$;
CREATE FUNCTION heap_block_accesses(tbl text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_stat_clear_snapshot();
  RETURN (SELECT heap_blks_hit + heap_blks_read FROM pg_statio_user_tables
          WHERE relid = tbl::regclass);
END $$;
CREATE TABLE reads_before AS
SELECT 'reads_key'::text AS tbl, 0::bigint AS accesses WHERE false;
SELECT reads_flush_stats();
INSERT INTO reads_before
SELECT t, heap_block_accesses(t) FROM unnest(ARRAY['reads_key', 'reads_ctid']) t;

-- Per row a round fills, three fetches by tid, one block access each: the
-- round's TID Scan, the UPDATE's fetch of the old row version and
-- heap_update's; the rounds' tid lists (an index scan), pruning, the final
-- sweeps and count add a few per page.  Reading each row a second time, as
-- the join on ctid did, made it four: 4.1 per row here.
CALL safe_backfill('reads_key', 'c', expression => '(SELECT p.region FROM reads_parent p WHERE p.id = reads_key.parent_id)',
                   batch_size => 1000);
SET safe_backfill.iteration = ctid;
CALL safe_backfill('reads_ctid', 'c', expression => '(SELECT p.region FROM reads_parent p WHERE p.id = reads_ctid.parent_id)',
                   batch_size => 1000);
RESET safe_backfill.iteration;
SET safe_backfill.hot_rounds = 1;
CALL safe_backfill('reads_one_round', 'c', expression => 'upper(name)', batch_size => 1000);
RESET safe_backfill.hot_rounds;
SELECT reads_flush_stats();
SELECT b.tbl, (heap_block_accesses(b.tbl) - b.accesses)::numeric / 4000 < 3.5 AS read_once
FROM reads_before b WHERE b.tbl <> 'reads_one_round' ORDER BY b.tbl;

-- the values a plain UPDATE gives; the rows whose parent gives NULL stay
-- NULL and were never written (xmin: still the insert's)
SELECT count(*) FILTER (WHERE c IS DISTINCT FROM (SELECT p.region FROM reads_parent p WHERE p.id = k.parent_id)) AS wrong,
       count(*) FILTER (WHERE c IS NULL) AS left_null,
       count(*) FILTER (WHERE c IS NULL AND xmin = :'insert_xmin') AS left_null_unwritten
FROM reads_key k;
SELECT count(*) FILTER (WHERE c IS DISTINCT FROM (SELECT p.region FROM reads_parent p WHERE p.id = k.parent_id)) AS wrong,
       count(*) FILTER (WHERE c IS NULL) AS left_null
FROM reads_ctid k;
SELECT count(*) FILTER (WHERE c IS DISTINCT FROM upper(name)) AS wrong FROM reads_one_round;

-- a partitioned table: the UPDATE runs on the parent, each leaf's rows get
-- the value computed from themselves (the subquery reads the row of the leaf
-- the UPDATE reads), by key and by block ranges
CREATE TABLE reads_parted (id int, part int, name text, c text, PRIMARY KEY (id, part))
  PARTITION BY LIST (part);
CREATE TABLE reads_parted_1 PARTITION OF reads_parted FOR VALUES IN (1);
CREATE TABLE reads_parted_2 PARTITION OF reads_parted FOR VALUES IN (2);
INSERT INTO reads_parted SELECT g, 1 + g % 2, 'Name ' || g FROM generate_series(1, 3000) g;
CALL safe_backfill('reads_parted', 'c',
  expression => '(SELECT p.region FROM reads_parent p WHERE p.id = 1 + reads_parted.id % 50) || lower(name)',
  batch_size => 700);
SELECT count(*) FILTER (WHERE c IS DISTINCT FROM (SELECT p.region FROM reads_parent p WHERE p.id = 1 + r.id % 50) || lower(name)) AS wrong,
       count(*) FILTER (WHERE c IS NULL) AS left_null
FROM reads_parted r;
UPDATE reads_parted SET c = NULL;
SET safe_backfill.iteration = ctid;
CALL safe_backfill('reads_parted', 'c', expression => 'lower(name) || part', batch_size => 700);
RESET safe_backfill.iteration;
SELECT count(*) FILTER (WHERE c IS DISTINCT FROM lower(name) || part) AS wrong FROM reads_parted;

-- a volatile expression: one call per row filled, on every path
CREATE SEQUENCE reads_calls;
CREATE TABLE reads_volatile (id int PRIMARY KEY, c bigint);
INSERT INTO reads_volatile SELECT g FROM generate_series(1, 3000) g;
CALL safe_backfill('reads_volatile', 'c', expression => 'nextval(''reads_calls'')', batch_size => 500);
SELECT count(*) AS rows, count(DISTINCT c) AS distinct_values,
       (SELECT last_value FROM reads_calls) AS calls FROM reads_volatile;

DROP TABLE reads_key, reads_ctid, reads_one_round, reads_parent, reads_before, reads_volatile, reads_parted;
DROP SEQUENCE reads_calls;
DROP FUNCTION reads_seed(text), reads_flush_stats(), heap_block_accesses(text);

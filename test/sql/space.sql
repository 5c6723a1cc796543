-- Space reuse: after each batch commits, the pages it rewrote are pruned and
-- their free space recorded, so the next batches' new row versions land
-- there instead of doubling the table.  Facts asserted: how much the table
-- grew with the setting on and off, and that every row was filled.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE FUNCTION seed(name text, with_key boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE %I (id bigint %s, name text NOT NULL)', name,
                 CASE WHEN with_key THEN 'PRIMARY KEY' ELSE '' END);
  EXECUTE format('INSERT INTO %I SELECT g, ''user '' || g FROM generate_series(1, 50000) g', name);
  EXECUTE format('ALTER TABLE %I ADD COLUMN status varchar(20)', name);
END $$;
CREATE TABLE sizes (name text PRIMARY KEY, before bigint);

SELECT seed('reuse_key', true), seed('reuse_nokey', false), seed('noreuse_key', true);
INSERT INTO sizes SELECT n, pg_table_size(n::regclass) FROM unnest(ARRAY['reuse_key', 'reuse_nokey', 'noreuse_key']) n;

CALL safe_backfill('reuse_key', 'status', 'active', 1000);
CALL safe_backfill('reuse_nokey', 'status', 'active', 1000);
SET safe_backfill.reuse_space = off;
CALL safe_backfill('noreuse_key', 'status', 'active', 1000);
RESET safe_backfill.reuse_space;

SELECT name, round(pg_table_size(name::regclass)::numeric / before, 1) < 1.5 AS grew_less_than_half,
       round(pg_table_size(name::regclass)::numeric / before, 1) >= 1.9 AS doubled
FROM sizes ORDER BY name;
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls, count(*) FROM reuse_key;
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls, count(*) FROM reuse_nokey;

-- the primary key in physical order is walked by key, the block range of
-- each batch is known; a key in random order spreads a batch over the whole
-- table, and then nothing is pruned (the result is still complete)
CREATE TABLE random_key (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int);
INSERT INTO random_key (n) SELECT generate_series(1, 20000);
ALTER TABLE random_key ADD COLUMN status text;
CALL safe_backfill('random_key', 'status', 'x', 1000);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls FROM random_key;

-- forcing block ranges on a table with a primary key
SELECT seed('by_ctid', true);
INSERT INTO sizes VALUES ('by_ctid', pg_table_size('by_ctid'));
SET safe_backfill.iteration = ctid;
CALL safe_backfill('by_ctid', 'status', 'x', 1000);
RESET safe_backfill.iteration;
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls,
       round(pg_table_size('by_ctid')::numeric / (SELECT before FROM sizes WHERE name = 'by_ctid'), 1) < 1.5 AS grew_less_than_half
FROM by_ctid;

-- parallel workers reuse space too: each prunes the pages of its batch
-- from two batches back, which the other workers' snapshots no longer see
SELECT seed('par_reuse', true);
INSERT INTO sizes VALUES ('par_reuse', pg_table_size('par_reuse'));
CALL safe_backfill('par_reuse', 'status', 'x', 1000, workers => 2);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls,
       round(pg_table_size('par_reuse')::numeric / (SELECT before FROM sizes WHERE name = 'par_reuse'), 1) < 1.7 AS far_from_doubled
FROM par_reuse;

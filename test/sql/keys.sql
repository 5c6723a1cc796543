-- Every kind of key: the keyset walks any orderable primary key, and tables
-- without one are walked by ranges of heap blocks.  Each batch is bounded by
-- the key range, so count(DISTINCT xmin) shows how many batches wrote rows.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
-- one transaction per batch (no HOT rounds: see hot_rounds.sql)
SET safe_backfill.hot_rounds = 1;
\set VERBOSITY terse

CREATE TABLE k_bigint (id bigint PRIMARY KEY);
INSERT INTO k_bigint SELECT g * 7 FROM generate_series(1, 1000) g;  -- gaps
ALTER TABLE k_bigint ADD COLUMN v text;
CALL safe_backfill('k_bigint', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_bigint;

CREATE TABLE k_int (id integer PRIMARY KEY);
INSERT INTO k_int SELECT g FROM generate_series(-500, 499) g;  -- negative keys
ALTER TABLE k_int ADD COLUMN v text;
CALL safe_backfill('k_int', 'v', 'x', 250);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_int;

-- random uuids: the physical order has nothing to do with the key order
CREATE TABLE k_uuid (id uuid PRIMARY KEY);
INSERT INTO k_uuid SELECT gen_random_uuid() FROM generate_series(1, 1000);
ALTER TABLE k_uuid ADD COLUMN v text;
CALL safe_backfill('k_uuid', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_uuid;

-- text keys, in the database collation and in "C"
CREATE TABLE k_text (id text PRIMARY KEY);
INSERT INTO k_text SELECT md5(g::text) FROM generate_series(1, 1000) g;
ALTER TABLE k_text ADD COLUMN v text;
CALL safe_backfill('k_text', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_text;

CREATE TABLE k_text_c (id text COLLATE "C" PRIMARY KEY);
INSERT INTO k_text_c SELECT chr(65 + g % 26) || chr(97 + g % 23) || g FROM generate_series(1, 1000) g;
ALTER TABLE k_text_c ADD COLUMN v text;
CALL safe_backfill('k_text_c', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_text_c;

-- varchar key: the index compares as text
CREATE TABLE k_varchar (id varchar(40) PRIMARY KEY);
INSERT INTO k_varchar SELECT 'k' || g FROM generate_series(1, 1000) g;
ALTER TABLE k_varchar ADD COLUMN v text;
CALL safe_backfill('k_varchar', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_varchar;

-- composite key, row comparisons (a, b) > ($1, $2)
CREATE TABLE k_composite (tenant int, seq text, PRIMARY KEY (tenant, seq));
INSERT INTO k_composite SELECT t, 's' || s FROM generate_series(1, 10) t, generate_series(1, 100) s;
ALTER TABLE k_composite ADD COLUMN v text;
CALL safe_backfill('k_composite', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_composite;

-- a key with INCLUDE columns: only the key columns order the batches
CREATE TABLE k_include (id int, extra int, PRIMARY KEY (id) INCLUDE (extra));
INSERT INTO k_include SELECT g, g FROM generate_series(1, 1000) g;
ALTER TABLE k_include ADD COLUMN v text;
CALL safe_backfill('k_include', 'v', 'x', 100);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_include;

-- a unique index is not a primary key: this table is walked by ctid ranges
CREATE TABLE k_none (id int UNIQUE, payload text);
INSERT INTO k_none SELECT g, repeat('p', 100) FROM generate_series(1, 2000) g;
ALTER TABLE k_none ADD COLUMN v text;
CALL safe_backfill('k_none', 'v', 'x', 200);
SELECT count(*), count(v), count(DISTINCT xmin::text) > 1 AS several_batches FROM k_none;

-- batch_size 1 still works, one row per transaction
CREATE TABLE k_tiny (id int PRIMARY KEY);
INSERT INTO k_tiny SELECT generate_series(1, 5);
ALTER TABLE k_tiny ADD COLUMN v text;
CALL safe_backfill('k_tiny', 'v', 'x', 1);
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM k_tiny;

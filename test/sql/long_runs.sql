-- Kept plans live in the session until freed: a call leaves none behind,
-- whether it succeeds or fails mid-run (pg_backend_memory_contexts shows
-- this session's own plan cache).
CREATE EXTENSION IF NOT EXISTS safe_backfill;
\set VERBOSITY terse
SET safe_backfill.progress_interval = 0;
-- whole batches kept (no HOT rounds: see hot_rounds.sql)
SET safe_backfill.hot_rounds = 1;
CREATE TABLE plans_t (id int PRIMARY KEY, v int);
INSERT INTO plans_t SELECT g FROM generate_series(1, 100) g;
CREATE VIEW plans_left AS
  SELECT count(*) AS kept_plans FROM pg_backend_memory_contexts
  WHERE name = 'CachedPlanSource' AND (ident LIKE '%plans_t%' OR ident LIKE '%safe_backfill_job%');
CALL safe_backfill('plans_t', 'v', 1, batch_size => 10, target_batch_ms => 0);
SELECT * FROM plans_left;
-- a batch fails: the call ends with the error, its plans are gone too
UPDATE plans_t SET v = NULL;
CREATE FUNCTION plans_t_fail() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN IF NEW.id = 55 THEN RAISE EXCEPTION 'row 55 refused'; END IF; RETURN NEW; END $$;
CREATE TRIGGER plans_t_fail BEFORE UPDATE ON plans_t FOR EACH ROW EXECUTE FUNCTION plans_t_fail();
CALL safe_backfill('plans_t', 'v', 2, batch_size => 10, target_batch_ms => 0);
SELECT count(*) FILTER (WHERE v = 2) AS kept_batches, count(*) FILTER (WHERE v IS NULL) AS nulls_left FROM plans_t;
SELECT * FROM plans_left;
-- a block-range walk (no primary key) as well
ALTER TABLE plans_t DROP CONSTRAINT plans_t_pkey;
CALL safe_backfill('plans_t', 'v', 3, batch_size => 10, target_batch_ms => 0);
SELECT * FROM plans_left;
DROP VIEW plans_left;
DROP TABLE plans_t;
DROP FUNCTION plans_t_fail();

-- workers => n splits the main pass across background workers; the result
-- is exactly the serial one on every kind of key.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE TABLE par_bigint (id bigint PRIMARY KEY, v text);
INSERT INTO par_bigint SELECT g * 3, CASE WHEN g % 7 = 0 THEN 'kept' END FROM generate_series(1, 20000) g;
CALL safe_backfill('par_bigint', 'v', 'par', 1000, workers => 2);
SELECT v, count(*) FROM par_bigint GROUP BY v ORDER BY v;

CREATE TABLE par_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v text);
INSERT INTO par_uuid SELECT FROM generate_series(1, 20000);
CALL safe_backfill('par_uuid', 'v', 'par', 1000, workers => 3);
SELECT v, count(*) FROM par_uuid GROUP BY v ORDER BY v;

CREATE TABLE par_composite (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO par_composite SELECT g % 13, 'k' || g FROM generate_series(1, 20000) g;
CALL safe_backfill('par_composite', 'v', 'par', 1000, workers => 4);
SELECT v, count(*) FROM par_composite GROUP BY v ORDER BY v;

CREATE TABLE par_nokey (n int, v text);
INSERT INTO par_nokey SELECT g FROM generate_series(1, 20000) g;
CALL safe_backfill('par_nokey', 'v', 'par', 1000, workers => 2);
SELECT v, count(*) FROM par_nokey GROUP BY v ORDER BY v;

-- the same tables filled serially give the same result
CREATE TABLE ser_composite (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO ser_composite SELECT g % 13, 'k' || g FROM generate_series(1, 20000) g;
CALL safe_backfill('ser_composite', 'v', 'par', 1000);
SELECT count(*) AS differences FROM par_composite p FULL JOIN ser_composite s USING (a, b)
WHERE p.v IS DISTINCT FROM s.v;

-- more workers than rows: as many ranges as rows, saying so
CREATE TABLE par_tiny (id int PRIMARY KEY, v text);
INSERT INTO par_tiny VALUES (1), (2);
CALL safe_backfill('par_tiny', 'v', 'x', 1000, workers => 4);
SELECT count(v) FROM par_tiny;

-- the job row counts what the workers filled
SELECT table_name, state, rows_done FROM safe_backfill_progress
WHERE table_name IN ('public.par_bigint', 'public.par_uuid', 'public.par_composite', 'public.par_nokey', 'public.par_tiny') ORDER BY table_name;

-- workers are checked like every argument
\set VERBOSITY default
CALL safe_backfill('par_tiny', 'v', 'x', workers => 0);
CALL safe_backfill('par_tiny', 'v', 'x', workers => 65);

-- the ranges of a parallel run are recorded, all done
SELECT j.table_name, count(*) AS ranges, bool_and(r.done) AS all_done, sum(r.rows_done) AS rows_done
FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
WHERE j.table_name IN ('public.par_bigint', 'public.par_uuid', 'public.par_composite', 'public.par_nokey')
GROUP BY 1 ORDER BY 1;

-- safe_update and safe_delete: the issue's four migrations, each checked
-- against what the plain statement gives; dry runs; what the jobs table
-- records; resuming at the saved key.
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_update_delete_runs;
RESET client_min_messages;
CREATE DATABASE regress_update_delete_runs;
\c regress_update_delete_runs
SET lc_messages = 'C';
CREATE EXTENSION safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE TABLE orders (id int PRIMARY KEY, currency text, price numeric,
                     price_cents int, payload jsonb, email text);
INSERT INTO orders
SELECT g, CASE WHEN g % 3 = 0 THEN 'eur' ELSE 'usd' END, g * 1.25,
       CASE WHEN g % 4 = 0 THEN (g * 125) ELSE NULL END,
       CASE WHEN g % 5 = 0 THEN '{}'::jsonb ELSE jsonb_build_object('email', 'u' || g || '@example.com') END,
       NULL
FROM generate_series(1, 100) g;
-- what the plain statements give, on a copy
CREATE TABLE expected AS TABLE orders;
UPDATE expected SET currency = 'EUR' WHERE currency = 'eur';
UPDATE expected SET price_cents = (price * 100)::int WHERE price_cents IS DISTINCT FROM (price * 100)::int;
UPDATE expected SET email = payload->>'email' WHERE email IS NULL AND payload ? 'email';

-- 1. fix a column for the rows that match
CALL safe_update('orders', $$currency = 'EUR'$$, $$currency = 'eur'$$, batch_size => 7);
-- the same call again is a no-op: no row matches any more
CALL safe_update('orders', $$currency = 'EUR'$$, $$currency = 'eur'$$, batch_size => 7);
-- 2. rewrite a column from another
CALL safe_update('orders', set => 'price_cents = (price * 100)::int',
                 "where" => 'price_cents IS DISTINCT FROM (price * 100)::int', batch_size => 30);
-- 3. move data out of a JSON blob
CALL safe_update('orders', $$email = payload->>'email'$$, $$email IS NULL AND payload ? 'email'$$,
                 batch_size => 16);
SELECT count(*) AS differing FROM (TABLE orders EXCEPT TABLE expected) d;
SELECT count(*) AS differing FROM (TABLE expected EXCEPT TABLE orders) d;

-- several columns at once, every row (no where); a value read from another table
CREATE TABLE rates (currency text PRIMARY KEY, rate numeric);
INSERT INTO rates VALUES ('EUR', 2), ('usd', 1);
ALTER TABLE orders ADD COLUMN local_price numeric, ADD COLUMN touched boolean;
CALL safe_update('orders', $$local_price = price * (SELECT r.rate FROM rates r WHERE r.currency = orders.currency), touched = true$$,
                 batch_size => 40);
SELECT count(*) FILTER (WHERE touched) AS touched,
       count(*) FILTER (WHERE local_price = price * CASE currency WHEN 'EUR' THEN 2 ELSE 1 END) AS right_price
FROM orders;

-- 4. purge old rows
CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, kind text);
INSERT INTO events SELECT g, now() - (g || ' days')::interval, 'k' || (g % 7)
FROM generate_series(1, 150) g;
-- a dry run counts and changes nothing, and is recorded as such
CALL safe_delete('events', $$created_at < now() - interval '90 days'$$, batch_size => 20, dry_run => true);
SELECT count(*) FROM events;
CALL safe_delete('events', $$created_at < now() - interval '90 days'$$, batch_size => 20);
SELECT count(*) AS left, count(*) FILTER (WHERE created_at < now() - interval '90 days') AS old_left FROM events;
-- a table without a primary key is walked by block ranges for a delete
CREATE TABLE logs (n int, note text);
INSERT INTO logs SELECT g, 'n' || g FROM generate_series(1, 500) g;
CALL safe_delete('logs', 'n % 2 = 0', batch_size => 50);
SELECT count(*), min(n % 2) FROM logs;

-- a partitioned table, updated across its leaves
CREATE TABLE measures (day date, id int, v int, PRIMARY KEY (day, id)) PARTITION BY RANGE (day);
CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE measures_2 PARTITION OF measures FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
INSERT INTO measures SELECT date '2026-01-01' + (g % 59), g, g FROM generate_series(1, 200) g;
CALL safe_update('measures', 'v = -v', 'v > 100', batch_size => 25);
SELECT count(*) FILTER (WHERE v < 0) AS negated, count(*) FILTER (WHERE v > 100) AS left FROM measures;

-- triggers fire for each row changed, as for the plain statement
CREATE TABLE audit (id int, old_v int, new_v int);
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit VALUES (OLD.id, OLD.v, NEW.v); RETURN NEW; END $$;
CREATE TABLE watched (id int PRIMARY KEY, v int);
INSERT INTO watched SELECT g, g FROM generate_series(1, 20) g;
CREATE TRIGGER watched_audit BEFORE UPDATE ON watched FOR EACH ROW EXECUTE FUNCTION audit_row();
CALL safe_update('watched', 'v = v * 10', 'v <= 5', batch_size => 3);
SELECT count(*), sum(new_v) FROM audit;

-- what the jobs table recorded
SELECT operation, column_name, set_list, where_clause, dry_run, state, rows_done
FROM safe_backfill_jobs ORDER BY id;
SELECT table_name, operation, state, rows_done FROM safe_backfill_progress ORDER BY id;

-- a run stopped by an error resumes after its last committed key
CREATE TABLE resumable (id int PRIMARY KEY, v int);
INSERT INTO resumable SELECT g, 0 FROM generate_series(1, 60) g;
CREATE FUNCTION fail_at(int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF $1 = 45 AND current_setting('test.fail', true) = 'on' THEN RAISE EXCEPTION 'stop at %', $1; END IF;
  RETURN 1;
END $$;
SET test.fail = 'on';
CALL safe_update('resumable', 'v = v + fail_at(id)', batch_size => 10);
SELECT count(*) FILTER (WHERE v = 1) AS done, count(*) FILTER (WHERE v = 0) AS not_yet FROM resumable;
SELECT state, rows_done, last_key FROM safe_backfill_jobs WHERE table_name = 'public.resumable';
-- a non-idempotent set list: the resumed run goes on after id 40 and
-- changes no row twice (v = 2 would show one)
SET test.fail = 'off';
CALL safe_update('resumable', 'v = v + fail_at(id)', batch_size => 10);
SELECT v, count(*) FROM resumable GROUP BY v ORDER BY v;
SELECT state, rows_done FROM safe_backfill_jobs WHERE table_name = 'public.resumable';
-- with HOT rounds (a predicate the set list makes false), an error in a
-- batch's later round leaves its earlier rounds committed: the resumed run
-- does not change their rows again
CREATE TABLE resumable_rounds (id int PRIMARY KEY, v int, pad text);
INSERT INTO resumable_rounds SELECT g, 0, repeat('z', 200) FROM generate_series(1, 600) g;
SET test.fail = 'on';
CALL safe_update('resumable_rounds', 'v = v + fail_at(id)', 'v = 0', batch_size => 100);
SELECT count(*) FILTER (WHERE v = 1) > 0 AS rounds_committed, count(*) FILTER (WHERE v = 0) > 0 AS rows_left
FROM resumable_rounds;
SET test.fail = 'off';
CALL safe_update('resumable_rounds', 'v = v + fail_at(id)', 'v = 0', batch_size => 100);
SELECT v, count(*) FROM resumable_rounds GROUP BY v ORDER BY v;

-- resume => false starts over: every row once more
CALL safe_update('resumable', 'v = v + fail_at(id)', batch_size => 25, resume => false);
SELECT v, count(*) FROM resumable GROUP BY v ORDER BY v;

-- HOT rounds: a set list that makes its rows stop matching is split into
-- rounds; one that leaves them matching is rolled back at its first round
-- and goes on batch by batch, whole: each row is still changed once
CREATE TABLE rounds (id int PRIMARY KEY, status text, n int, pad text);
INSERT INTO rounds SELECT g, 'old', 0, repeat('x', 100) FROM generate_series(1, 3000) g;
CALL safe_update('rounds', $$status = 'new'$$, $$status = 'old'$$, batch_size => 1000);
CALL safe_update('rounds', 'n = n + 1', 'n < 100', batch_size => 1000);
SELECT status, n, count(*) FROM rounds GROUP BY status, n;

-- row-level security applies as it would to the plain statements: the rows
-- a policy hides from the caller are neither changed nor deleted
CREATE TABLE secured (id int PRIMARY KEY, owner name, v int);
INSERT INTO secured SELECT g, CASE WHEN g % 2 = 0 THEN 'regress_ud_owner' ELSE 'someone_else' END, 0
FROM generate_series(1, 40) g;
ALTER TABLE secured ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON secured USING (owner = current_user);
CREATE ROLE regress_ud_owner;
GRANT SELECT, UPDATE, DELETE ON secured TO regress_ud_owner;
SET ROLE regress_ud_owner;
CALL safe_update('secured', 'v = 1', 'v = 0', batch_size => 7);
CALL safe_delete('secured', 'id > 30', batch_size => 7);
RESET ROLE;
SELECT owner, v, count(*) FROM secured GROUP BY owner, v ORDER BY 1, 2;
DROP TABLE secured;
DROP ROLE regress_ud_owner;

-- workers split the walk by key ranges: each row still changed once
CREATE TABLE wide (id int PRIMARY KEY, v int, flag boolean);
INSERT INTO wide SELECT g, 0, g % 2 = 0 FROM generate_series(1, 3000) g;
ANALYZE wide;
CALL safe_update('wide', 'v = v + 1', 'flag AND v = 0', batch_size => 100, workers => 2);
SELECT v, flag, count(*) FROM wide GROUP BY v, flag ORDER BY v, flag;
CALL safe_delete('wide', 'NOT flag', batch_size => 100, workers => 2);
SELECT count(*), bool_and(flag) FROM wide;
SELECT operation, state, rows_done FROM safe_backfill_jobs WHERE table_name = 'public.wide' ORDER BY id;

\c :regress_db
DROP DATABASE regress_update_delete_runs;

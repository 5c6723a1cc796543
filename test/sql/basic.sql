-- The main use: add a nullable column, fill it, in batches.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE TABLE large_user (id bigserial PRIMARY KEY, name varchar(100) NOT NULL);
INSERT INTO large_user (name) SELECT 'user ' || g FROM generate_series(1, 2500) g;
ALTER TABLE large_user ADD COLUMN status varchar(20);

-- an untyped literal resolves through anycompatible
CALL safe_backfill('large_user', 'status', 'active', 1000);
SELECT count(*) AS total, count(status) AS filled, min(status), max(status) FROM large_user;

-- named arguments, default batch size
ALTER TABLE large_user ADD COLUMN plan text;
UPDATE large_user SET plan = 'gold' WHERE id % 10 = 0;
CALL safe_backfill(tbl => 'large_user', col => 'plan', value => 'free');
-- values already present are never overwritten
SELECT plan, count(*) FROM large_user GROUP BY plan ORDER BY plan;

-- a text value is read like a literal by the column type's input function
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN short_code AS varchar(3) CHECK (VALUE ~ '^[A-Z]+$');
CREATE TABLE typed (id int PRIMARY KEY);
INSERT INTO typed SELECT generate_series(1, 30);
ALTER TABLE typed ADD COLUMN n integer, ADD COLUMN d date, ADD COLUMN j jsonb,
    ADD COLUMN a int[], ADD COLUMN m mood, ADD COLUMN c short_code,
    ADD COLUMN p numeric(6,2), ADD COLUMN big bigint, ADD COLUMN ts timestamptz;
CALL safe_backfill('typed', 'n', '42', 7);
CALL safe_backfill('typed', 'd', '2024-01-01', 7);
CALL safe_backfill('typed', 'j', '{"a": 1}', 7);
CALL safe_backfill('typed', 'a', '{1,2,3}', 7);
CALL safe_backfill('typed', 'm', 'happy', 7);
CALL safe_backfill('typed', 'c', 'ABC', 7);
CALL safe_backfill('typed', 'p', '3.14159', 7);
-- a value of another type is converted by assignment rules
CALL safe_backfill('typed', 'big', 7::smallint, 7);
CALL safe_backfill('typed', 'ts', '2024-05-06 07:08:09+00'::timestamptz, 7);
SET timezone = 'UTC';
SELECT DISTINCT n, d, j, a, m, c, p, big, ts FROM typed;
SELECT count(*) FILTER (WHERE n IS NULL OR d IS NULL OR j IS NULL OR a IS NULL
    OR m IS NULL OR c IS NULL OR p IS NULL OR big IS NULL OR ts IS NULL) AS nulls
FROM typed;

-- an empty table
CREATE TABLE empty_t (id int PRIMARY KEY, v text);
CALL safe_backfill('empty_t', 'v', 'x');

-- a column that is already NOT NULL: nothing to do
CALL safe_backfill('large_user', 'name', 'x');

-- a table whose new column has a DEFAULT for new rows but NULL in old ones
CREATE TABLE with_default (id int PRIMARY KEY);
INSERT INTO with_default SELECT generate_series(1, 100);
ALTER TABLE with_default ADD COLUMN flag boolean;
ALTER TABLE with_default ALTER COLUMN flag SET DEFAULT true;
INSERT INTO with_default SELECT generate_series(101, 110);
CALL safe_backfill('with_default', 'flag', false, 40);
SELECT flag, count(*) FROM with_default GROUP BY flag ORDER BY flag;

-- partitioned table with a primary key: the keyset spans the partitions
CREATE TABLE events (id int, region text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
INSERT INTO events SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 600) g;
ALTER TABLE events ADD COLUMN kind text;
CALL safe_backfill('events', 'kind', 'click', 100);
SELECT tableoid::regclass, count(*), count(kind) FROM events GROUP BY 1 ORDER BY 1;

-- partitioned table without a primary key: ctid ranges in every partition
CREATE TABLE logs (ts int, msg text) PARTITION BY RANGE (ts);
CREATE TABLE logs_1 PARTITION OF logs FOR VALUES FROM (0) TO (500);
CREATE TABLE logs_2 PARTITION OF logs FOR VALUES FROM (500) TO (1000);
INSERT INTO logs SELECT g, NULL FROM generate_series(0, 999) g;
CALL safe_backfill('logs', 'msg', 'hello', 100);
SELECT tableoid::regclass, count(*), count(msg) FROM logs GROUP BY 1 ORDER BY 1;

-- inheritance: the parent is filled, children are named in a NOTICE
CREATE TABLE parent_t (id int PRIMARY KEY, v text);
CREATE TABLE child_t () INHERITS (parent_t);
INSERT INTO parent_t SELECT generate_series(1, 10);
INSERT INTO child_t SELECT generate_series(11, 20);
CALL safe_backfill('parent_t', 'v', 'p', 5);
SELECT tableoid::regclass, count(*), count(v) FROM parent_t GROUP BY 1 ORDER BY 1;

-- a DO block at top level is not atomic either, so the CALL may commit
DO $$ BEGIN CALL safe_backfill('child_t', 'v', 'c', 5); END $$;
SELECT count(v) FROM child_t;

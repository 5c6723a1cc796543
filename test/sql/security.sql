-- PostgreSQL 18 promotes a column through a NOT NULL constraint, earlier
-- versions through a CHECK: the expected files differ by the path, and this
-- line pins each file to its own (a fallback to the other path fails).
SELECT current_setting('server_version_num')::int >= 180000 AS native_not_null;
-- Written as an attacker: a plain LOGIN role that owns one schema and one
-- table tries to run its own code with the extension owner's privileges
-- through safe_backfill.  Every attempt must leave it without SUPERUSER,
-- and the backfill either works or fails cleanly.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
SELECT current_user AS admin \gset

CREATE ROLE regress_sb_attacker LOGIN;
CREATE SCHEMA sb_evil AUTHORIZATION regress_sb_attacker;
CREATE EXTENSION IF NOT EXISTS citext;
SET ROLE regress_sb_attacker;

-- The payload: try to become superuser; stay silent whatever happens, but
-- leave a trace in the session (sb_evil.ran) for the test to look at.
CREATE FUNCTION sb_evil.escalate() RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
    PERFORM set_config('sb_evil.ran', 'yes', false);
    BEGIN
        EXECUTE 'ALTER ROLE regress_sb_attacker SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END $$;

-- Hostile operators with the exact signatures of pg_catalog's, on every type
-- the bookkeeping, the progress view and the generated statements use: with
-- sb_evil first in search_path, an unqualified operator resolves to these.
DO $$
DECLARE
    t text;
    op text;
    n int := 0;
BEGIN
    FOREACH t IN ARRAY ARRAY['oid', 'smallint', 'integer', 'bigint', 'numeric',
                             'double precision', 'text', 'name', 'text[]', 'boolean',
                             'timestamptz', 'interval', 'tid', 'pg_lsn'] LOOP
        FOREACH op IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>='] LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION sb_evil.cmp_%s(%s, %s) RETURNS boolean LANGUAGE plpgsql'
                           ' SET search_path = pg_catalog AS $f$ BEGIN PERFORM sb_evil.escalate();'
                           ' RETURN $1 OPERATOR(pg_catalog.%s) $2; END $f$', n, t, t, op);
            EXECUTE format('CREATE OPERATOR sb_evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sb_evil.cmp_%s)',
                           op, t, t, n);
        END LOOP;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'numeric',
                             'double precision', 'interval'] LOOP
        FOREACH op IN ARRAY ARRAY['+', '-'] LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION sb_evil.arith_%s(%s, %s) RETURNS %s LANGUAGE plpgsql'
                           ' SET search_path = pg_catalog AS $f$ BEGIN PERFORM sb_evil.escalate();'
                           ' RETURN $1 OPERATOR(pg_catalog.%s) $2; END $f$', n, t, t, t, op);
            EXECUTE format('CREATE OPERATOR sb_evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sb_evil.arith_%s)',
                           op, t, t, n);
        END LOOP;
    END LOOP;
END $$;
CREATE FUNCTION sb_evil.minus_ts(timestamptz, timestamptz) RETURNS interval LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM sb_evil.escalate(); RETURN $1 - $2; END $$;
CREATE OPERATOR sb_evil.- (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = sb_evil.minus_ts);
CREATE FUNCTION sb_evil.concat_text(text, text) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM sb_evil.escalate(); RETURN $1 || $2; END $$;
CREATE OPERATOR sb_evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = sb_evil.concat_text);
-- and functions a statement might call unqualified
CREATE FUNCTION sb_evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM sb_evil.escalate(); RETURN now(); END $$;
CREATE FUNCTION sb_evil.pg_backend_pid() RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM sb_evil.escalate(); RETURN pg_backend_pid(); END $$;
CREATE FUNCTION sb_evil.current_database() RETURNS name LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM sb_evil.escalate(); RETURN current_database(); END $$;

CREATE TABLE sb_evil.t (id bigint PRIMARY KEY, v text);
INSERT INTO sb_evil.t SELECT generate_series(1, 500);
CREATE TABLE sb_evil.t_nokey (n int, v text);
INSERT INTO sb_evil.t_nokey SELECT generate_series(1, 500);
-- a key whose columns keep their operators in different schemas (citext's
-- are in public): no single OPERATOR(schema.>) fits a row comparison
CREATE TABLE sb_evil.t_mixed (id int, name public.citext, v text, PRIMARY KEY (id, name));
INSERT INTO sb_evil.t_mixed SELECT g % 7, 'n' || g FROM generate_series(1, 500) g;

-- 1. The hostile operators first in the calling session's search_path.
SET search_path = sb_evil, pg_catalog, public;
CALL public.safe_backfill('sb_evil.t', 'v', 'one', 100);
CALL public.safe_backfill('sb_evil.t_nokey', 'v', 'one', 100);
CALL public.safe_backfill('sb_evil.t_mixed', 'v', 'one', 100);
-- resuming reads the run back and claims it: an interrupted run (as a crash
-- leaves it) is resumed by the same call
UPDATE sb_evil.t SET v = NULL WHERE id OPERATOR(pg_catalog.>) 400;
RESET search_path;
RESET ROLE;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, rows_done, rows_scanned, pid, username)
VALUES ('sb_evil.t'::regclass, 2, 'sb_evil.t', 'v', 'two', 'key', '{450}', 0, 0, 0, 'regress_sb_attacker')
RETURNING id AS resumed_id \gset
SET ROLE regress_sb_attacker;
SET search_path = sb_evil, pg_catalog, public;
SET client_min_messages = warning;  -- the NOTICE names the run's id
CALL public.safe_backfill('sb_evil.t', 'v', 'two', 100);
RESET client_min_messages;
-- a run that fails records its error, as the owner too
ALTER TABLE sb_evil.t ADD CONSTRAINT no_three CHECK (v OPERATOR(pg_catalog.<>) 'three') NOT VALID;
UPDATE sb_evil.t SET v = NULL WHERE id OPERATOR(pg_catalog.>) 450;
CALL public.safe_backfill('sb_evil.t', 'v', 'three', 10);
SELECT * FROM public.safe_backfill_progress LIMIT 0;
-- the sessions holding a lock are described from pg_locks (here a prepared
-- transaction holds one on the attacker's table)
RESET search_path;
RESET ROLE;
BEGIN;
LOCK TABLE sb_evil.t_nokey IN ACCESS SHARE MODE;
PREPARE TRANSACTION 'sb_lock';
SET ROLE regress_sb_attacker;
SET search_path = sb_evil, pg_catalog, public;
\set VERBOSITY default
CALL public.safe_set_not_null('sb_evil.t_nokey', 'v', lock_timeout => '10ms', max_attempts => 1);
\set VERBOSITY terse
RESET search_path;
RESET ROLE;
COMMIT PREPARED 'sb_lock';
SET ROLE regress_sb_attacker;
-- none of the hostile operators ran, not even as the attacker itself
SELECT current_setting('sb_evil.ran', true) AS hostile_code_ran;
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sb_attacker';
SELECT v, count(*) FROM sb_evil.t GROUP BY v ORDER BY v;
SELECT v, count(*) FROM sb_evil.t_nokey GROUP BY v ORDER BY v;
SELECT v, count(*) FROM sb_evil.t_mixed GROUP BY v ORDER BY v;
-- the interrupted run was the one resumed and finished
SELECT id = :resumed_id AS resumed, state, phase FROM safe_backfill_jobs
WHERE table_name = 'sb_evil.t' AND value_text = 'two';
SELECT state, error FROM safe_backfill_jobs
WHERE table_name = 'sb_evil.t' AND value_text = 'three';

-- 2. The same search_path as the role's default: background workers start a
-- new connection with it, even when the calling session's own is harmless.
-- (should case 1 have succeeded, start this one from NOSUPERUSER again)
ALTER ROLE regress_sb_attacker NOSUPERUSER;
ALTER ROLE regress_sb_attacker SET search_path = sb_evil, pg_catalog, public;
CREATE TABLE sb_evil.big (id bigint PRIMARY KEY, v text);
INSERT INTO sb_evil.big SELECT generate_series(1, 20000);
ALTER TABLE sb_evil.big OWNER TO regress_sb_attacker;
CREATE TABLE sb_evil.big_nokey (n int, v text);
INSERT INTO sb_evil.big_nokey SELECT generate_series(1, 20000);
ALTER TABLE sb_evil.big_nokey OWNER TO regress_sb_attacker;
\c - regress_sb_attacker
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
SET search_path = pg_catalog, public;
CALL safe_backfill('sb_evil.big', 'v', 'par', 1000, workers => 2);
CALL safe_backfill('sb_evil.big_nokey', 'v', 'par', 1000, workers => 2);
\c - :admin
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sb_attacker';
-- and the leader with the role's default search_path too
ALTER ROLE regress_sb_attacker NOSUPERUSER;
\c - regress_sb_attacker
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
UPDATE sb_evil.big SET v = NULL WHERE id OPERATOR(pg_catalog.>) 15000;
CALL public.safe_backfill('sb_evil.big', 'v', 'par2', 1000, workers => 2);
\c - :admin
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sb_attacker';
SELECT v, count(*) FROM sb_evil.big GROUP BY v ORDER BY v;
SELECT v, count(*) FROM sb_evil.big_nokey GROUP BY v ORDER BY v;

-- 3. Job records are private: another role sees none of the attacker's runs
-- and never the values written; the attacker sees its own runs.
CREATE ROLE regress_sb_other;
SET ROLE regress_sb_other;
SELECT count(*) AS others_runs FROM safe_backfill_progress
WHERE username = 'regress_sb_attacker';
SELECT value_text FROM safe_backfill_jobs;
SELECT count(*) FROM safe_backfill_job_ranges;
RESET ROLE;
SET ROLE regress_sb_attacker;
SELECT table_name, column_name, state, phase FROM safe_backfill_progress
WHERE username = 'regress_sb_attacker' ORDER BY id;
SELECT value_text FROM safe_backfill_jobs;
RESET ROLE;
-- a role that may read the table sees its runs, whoever ran them
GRANT USAGE ON SCHEMA sb_evil TO regress_sb_other;
GRANT SELECT ON sb_evil.t TO regress_sb_other;
SET ROLE regress_sb_other;
SELECT DISTINCT table_name FROM safe_backfill_progress ORDER BY 1;
RESET ROLE;
-- a member of the role that ran them sees them
GRANT regress_sb_attacker TO regress_sb_other;
SET ROLE regress_sb_other;
SELECT count(*) > 0 AS member_sees FROM safe_backfill_progress
WHERE username = 'regress_sb_attacker' AND table_name = 'sb_evil.big';
RESET ROLE;
REVOKE regress_sb_attacker FROM regress_sb_other;

-- 4. A table and a column named like SQL: the commands hints suggest quote
-- them, so pasted as shown they act on that table and nothing else.
CREATE TABLE y (id int);
CREATE SCHEMA "s; DROP TABLE y; --";
CREATE TABLE "s; DROP TABLE y; --"."x; DROP TABLE y; --"
    (id int PRIMARY KEY, "it's; DROP TABLE y; --" text);
INSERT INTO "s; DROP TABLE y; --"."x; DROP TABLE y; --" SELECT generate_series(1, 20);
\set VERBOSITY default
CALL safe_backfill('"s; DROP TABLE y; --"."x; DROP TABLE y; --"', 'no such; DROP TABLE y; --', 'v');
CALL safe_set_not_null('"s; DROP TABLE y; --"."x; DROP TABLE y; --"', 'it''s; DROP TABLE y; --');
-- the hint above, pasted with a value
SET client_min_messages = warning;
CALL safe_backfill('"s; DROP TABLE y; --"."x; DROP TABLE y; --"', 'it''s; DROP TABLE y; --', 'v');
RESET client_min_messages;
SELECT count(*) AS filled FROM "s; DROP TABLE y; --"."x; DROP TABLE y; --"
WHERE "it's; DROP TABLE y; --" = 'v';
-- something that keeps writing NULL: every sweep finds row 1 NULL again
CREATE FUNCTION keep_null() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 1 THEN NEW."it's; DROP TABLE y; --" := NULL; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER keep_null BEFORE UPDATE ON "s; DROP TABLE y; --"."x; DROP TABLE y; --"
    FOR EACH ROW EXECUTE FUNCTION keep_null();
UPDATE "s; DROP TABLE y; --"."x; DROP TABLE y; --" SET "it's; DROP TABLE y; --" = NULL;
CALL safe_backfill('"s; DROP TABLE y; --"."x; DROP TABLE y; --"', 'it''s; DROP TABLE y; --', 'w');
-- the hint above, pasted with a default
ALTER TABLE "s; DROP TABLE y; --"."x; DROP TABLE y; --" ALTER COLUMN "it's; DROP TABLE y; --" SET DEFAULT 'd';
\set VERBOSITY terse
SELECT count(*) AS y_still_there FROM y;
SELECT pg_catalog.pg_get_expr(adbin, adrelid) AS new_default FROM pg_attrdef
WHERE adrelid = '"s; DROP TABLE y; --"."x; DROP TABLE y; --"'::regclass;
DROP SCHEMA "s; DROP TABLE y; --" CASCADE;
DROP TABLE y;
DROP FUNCTION keep_null();

-- 5. What the bookkeeping runs under, seen by triggers on the jobs tables:
-- the owner, security-restricted (no temporary table may be created), with
-- search_path pg_catalog, pg_temp; in the leader and in the workers.  A
-- bookkeeping statement that fails stops the run cleanly: its batch rolls
-- back, and the caller is back to its own role and search_path.
CREATE TABLE sb_seen (tbl text, usr name, path text, restricted boolean);
CREATE FUNCTION sb_see() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r boolean := false;
BEGIN
    BEGIN
        CREATE TEMP TABLE sb_probe (x int);
        DROP TABLE sb_probe;
    EXCEPTION WHEN insufficient_privilege THEN r := true;
    END;
    INSERT INTO public.sb_seen VALUES (TG_TABLE_NAME, current_user, current_setting('search_path'), r);
    IF TG_TABLE_NAME = 'safe_backfill_jobs' THEN
        IF NEW.table_name = 'sb_evil.t_fail' AND NEW.batches = 2 THEN
            RAISE EXCEPTION 'bookkeeping failed on purpose';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sb_see BEFORE INSERT OR UPDATE ON safe_backfill_jobs
    FOR EACH ROW EXECUTE FUNCTION sb_see();
CREATE TRIGGER sb_see BEFORE INSERT OR UPDATE ON safe_backfill_job_ranges
    FOR EACH ROW EXECUTE FUNCTION sb_see();
CREATE TEMP TABLE sb_temp_namespace_exists (x int);
CREATE TABLE sb_evil.t_fail (id int PRIMARY KEY, v text);
INSERT INTO sb_evil.t_fail SELECT generate_series(1, 100);
ALTER TABLE sb_evil.t_fail OWNER TO regress_sb_attacker;
ALTER TABLE sb_evil.big OWNER TO regress_sb_attacker;
UPDATE sb_evil.big SET v = NULL;
SET ROLE regress_sb_attacker;
SET search_path = sb_evil, pg_catalog, public;
CALL public.safe_backfill('sb_evil.big', 'v', 'five', 5000, workers => 2);
SET safe_backfill.hot_rounds = 1;  -- whole batches: the second one's record fails
CALL public.safe_backfill('sb_evil.t_fail', 'v', 'five', 10);
RESET safe_backfill.hot_rounds;
SELECT current_user, current_setting('search_path') AS search_path;
RESET search_path;
RESET ROLE;
SELECT tbl, usr = current_user AS as_owner, path, restricted, count(*) > 0 AS seen
FROM sb_seen GROUP BY 1, 2, 3, 4 ORDER BY 1;
SELECT count(v) AS filled FROM sb_evil.t_fail;  -- the first batch of 10
DROP TRIGGER sb_see ON safe_backfill_jobs;
DROP TRIGGER sb_see ON safe_backfill_job_ranges;
DROP TABLE sb_seen, sb_temp_namespace_exists;
DROP FUNCTION sb_see();

DROP SCHEMA sb_evil CASCADE;
DROP EXTENSION citext;
DELETE FROM safe_backfill_jobs WHERE username = 'regress_sb_attacker';
DROP OWNED BY regress_sb_other;
DROP ROLE regress_sb_other;
DROP ROLE regress_sb_attacker;

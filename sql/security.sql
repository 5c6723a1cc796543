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
CREATE SCHEMA evil AUTHORIZATION regress_sb_attacker;
SET ROLE regress_sb_attacker;

-- The payload: try to become superuser; stay silent whatever happens.
CREATE FUNCTION evil.escalate() RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
    EXECUTE 'ALTER ROLE regress_sb_attacker SUPERUSER';
EXCEPTION WHEN OTHERS THEN NULL;
END $$;

-- Hostile operators with the exact signatures of pg_catalog's, on every type
-- the bookkeeping, the progress view and the generated statements use: with
-- evil first in search_path, an unqualified operator resolves to these.
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
            EXECUTE format('CREATE FUNCTION evil.cmp_%s(%s, %s) RETURNS boolean LANGUAGE plpgsql'
                           ' SET search_path = pg_catalog AS $f$ BEGIN PERFORM evil.escalate();'
                           ' RETURN $1 OPERATOR(pg_catalog.%s) $2; END $f$', n, t, t, op);
            EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.cmp_%s)',
                           op, t, t, n);
        END LOOP;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'numeric',
                             'double precision', 'interval'] LOOP
        FOREACH op IN ARRAY ARRAY['+', '-'] LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION evil.arith_%s(%s, %s) RETURNS %s LANGUAGE plpgsql'
                           ' SET search_path = pg_catalog AS $f$ BEGIN PERFORM evil.escalate();'
                           ' RETURN $1 OPERATOR(pg_catalog.%s) $2; END $f$', n, t, t, t, op);
            EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.arith_%s)',
                           op, t, t, n);
        END LOOP;
    END LOOP;
END $$;
CREATE FUNCTION evil.minus_ts(timestamptz, timestamptz) RETURNS interval LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM evil.escalate(); RETURN $1 - $2; END $$;
CREATE OPERATOR evil.- (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.minus_ts);
CREATE FUNCTION evil.concat_text(text, text) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM evil.escalate(); RETURN $1 || $2; END $$;
CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.concat_text);
-- and functions a statement might call unqualified
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM evil.escalate(); RETURN now(); END $$;
CREATE FUNCTION evil.pg_backend_pid() RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM evil.escalate(); RETURN pg_backend_pid(); END $$;
CREATE FUNCTION evil.current_database() RETURNS name LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM evil.escalate(); RETURN current_database(); END $$;

CREATE TABLE evil.t (id bigint PRIMARY KEY, v text);
INSERT INTO evil.t SELECT generate_series(1, 500);
CREATE TABLE evil.t_nokey (n int, v text);
INSERT INTO evil.t_nokey SELECT generate_series(1, 500);

-- 1. The hostile operators first in the calling session's search_path.
SET search_path = evil, pg_catalog, public;
CALL public.safe_backfill('evil.t', 'v', 'one', 100);
CALL public.safe_backfill('evil.t_nokey', 'v', 'one', 100);
-- resuming reads the run back and claims it: an interrupted run (as a crash
-- leaves it) is resumed by the same call
UPDATE evil.t SET v = NULL WHERE id OPERATOR(pg_catalog.>) 400;
RESET ROLE;
INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
    iteration, last_key, rows_done, rows_scanned, pid)
VALUES ('evil.t'::regclass, 2, 'evil.t', 'v', 'two', 'key', '{450}', 0, 0, 0)
RETURNING id AS resumed_id \gset
SET ROLE regress_sb_attacker;
SET search_path = evil, pg_catalog, public;
SET client_min_messages = warning;  -- the NOTICE names the run's id
CALL public.safe_backfill('evil.t', 'v', 'two', 100);
RESET client_min_messages;
-- a run that fails records its error, as the owner too
ALTER TABLE evil.t ADD CONSTRAINT no_three CHECK (v OPERATOR(pg_catalog.<>) 'three') NOT VALID;
UPDATE evil.t SET v = NULL WHERE id OPERATOR(pg_catalog.>) 450;
CALL public.safe_backfill('evil.t', 'v', 'three', 10);
SELECT * FROM public.safe_backfill_progress LIMIT 0;
RESET search_path;
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sb_attacker';
SELECT v, count(*) FROM evil.t GROUP BY v ORDER BY v;
SELECT v, count(*) FROM evil.t_nokey GROUP BY v ORDER BY v;
-- the interrupted run was the one resumed and finished
SELECT id = :resumed_id AS resumed, state, phase FROM safe_backfill_jobs WHERE value_text = 'two';
SELECT state, error FROM safe_backfill_jobs WHERE value_text = 'three';

-- 2. The same search_path as the role's default: background workers start a
-- new connection with it, even when the calling session's own is harmless.
-- (should case 1 have succeeded, start this one from NOSUPERUSER again)
ALTER ROLE regress_sb_attacker NOSUPERUSER;
ALTER ROLE regress_sb_attacker SET search_path = evil, pg_catalog, public;
CREATE TABLE evil.big (id bigint PRIMARY KEY, v text);
INSERT INTO evil.big SELECT generate_series(1, 20000);
ALTER TABLE evil.big OWNER TO regress_sb_attacker;
CREATE TABLE evil.big_nokey (n int, v text);
INSERT INTO evil.big_nokey SELECT generate_series(1, 20000);
ALTER TABLE evil.big_nokey OWNER TO regress_sb_attacker;
\c - regress_sb_attacker
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
SET search_path = pg_catalog, public;
CALL safe_backfill('evil.big', 'v', 'par', 1000, workers => 2);
CALL safe_backfill('evil.big_nokey', 'v', 'par', 1000, workers => 2);
\c - :admin
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sb_attacker';
-- and the leader with the role's default search_path too
ALTER ROLE regress_sb_attacker NOSUPERUSER;
\c - regress_sb_attacker
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
UPDATE evil.big SET v = NULL WHERE id OPERATOR(pg_catalog.>) 15000;
CALL public.safe_backfill('evil.big', 'v', 'par2', 1000, workers => 2);
\c - :admin
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_sb_attacker';
SELECT v, count(*) FROM evil.big GROUP BY v ORDER BY v;
SELECT v, count(*) FROM evil.big_nokey GROUP BY v ORDER BY v;

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
GRANT USAGE ON SCHEMA evil TO regress_sb_other;
GRANT SELECT ON evil.t TO regress_sb_other;
SET ROLE regress_sb_other;
SELECT DISTINCT table_name FROM safe_backfill_progress ORDER BY 1;
RESET ROLE;
-- a member of the role that ran them sees them
GRANT regress_sb_attacker TO regress_sb_other;
SET ROLE regress_sb_other;
SELECT count(*) > 0 AS member_sees FROM safe_backfill_progress
WHERE username = 'regress_sb_attacker' AND table_name = 'evil.big';
RESET ROLE;
REVOKE regress_sb_attacker FROM regress_sb_other;

DROP SCHEMA evil CASCADE;
DELETE FROM safe_backfill_jobs WHERE username = 'regress_sb_attacker';
DROP OWNED BY regress_sb_other;
DROP ROLE regress_sb_other;
DROP ROLE regress_sb_attacker;

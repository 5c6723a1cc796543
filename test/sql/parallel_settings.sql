-- Parallel workers run in the caller's exact context: for every setting that
-- changes what a session writes, a table filled with workers => 2 is
-- identical to a copy filled in the caller's session.  Key bounds and the
-- positions in the jobs tables do not depend on the session's settings.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

-- a copy of each table to fill serially (ps_ser_) and one to fill in parallel (ps_par_)
CREATE FUNCTION ps_pair(name text, coltype text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR p IN 1..2 LOOP
		EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v %s)',
					   (ARRAY['ps_ser_', 'ps_par_'])[p] || name, coltype);
		EXECUTE format('INSERT INTO %I SELECT generate_series(1, 20000)',
					   (ARRAY['ps_ser_', 'ps_par_'])[p] || name);
	END LOOP;
END $$;
-- rows where the parallel copy differs from the serial one
CREATE FUNCTION ps_differences(name text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM %I s FULL JOIN %I p USING (id) WHERE s.v IS DISTINCT FROM p.v',
				   'ps_ser_' || name, 'ps_par_' || name) INTO n;
	RETURN n;
END $$;

-- DateStyle 'SQL, DMY': February 1st is written 01/02/2024
SELECT ps_pair('dmy', 'date');
SET DateStyle = 'SQL, DMY';
CALL safe_backfill('ps_ser_dmy', 'v', '2024-02-01'::date, 1000);
CALL safe_backfill('ps_par_dmy', 'v', '2024-02-01'::date, 1000, workers => 2);
RESET DateStyle;
SELECT ps_differences('dmy'), (SELECT DISTINCT v::text FROM ps_par_dmy) AS par_value;

-- a TimeZone whose abbreviation (IST) means something else elsewhere
SELECT ps_pair('tz', 'timestamptz');
SET TimeZone = 'Asia/Kolkata';
SET DateStyle = 'Postgres, MDY';
CALL safe_backfill('ps_ser_tz', 'v', '2024-02-01 12:00+05:30'::timestamptz, 1000);
CALL safe_backfill('ps_par_tz', 'v', '2024-02-01 12:00+05:30'::timestamptz, 1000, workers => 2);
RESET DateStyle;
SET TimeZone = 'UTC';
SELECT ps_differences('tz'), (SELECT DISTINCT v::text FROM ps_par_tz) AS par_value;
RESET TimeZone;

-- IntervalStyle sql_standard: -1 day -2 hours is written -1 -2:00:00
SELECT ps_pair('interval', 'interval');
SET IntervalStyle = 'sql_standard';
CALL safe_backfill('ps_ser_interval', 'v', '-1 day -2 hours'::interval, 1000);
CALL safe_backfill('ps_par_interval', 'v', '-1 day -2 hours'::interval, 1000, workers => 2);
RESET IntervalStyle;
SELECT ps_differences('interval'), (SELECT DISTINCT v::text FROM ps_par_interval) AS par_value;

-- extra_float_digits = -14: 3.14159 is written 3
SELECT ps_pair('float', 'float8');
SET extra_float_digits = -14;
CALL safe_backfill('ps_ser_float', 'v', 3.14159::float8, 1000);
CALL safe_backfill('ps_par_float', 'v', 3.14159::float8, 1000, workers => 2);
RESET extra_float_digits;
SELECT ps_differences('float'), (SELECT DISTINCT v::text FROM ps_par_float) AS par_value;

-- a trigger writing to an unqualified table writes where the caller's search_path says
SELECT ps_pair('path', 'text');
CREATE SCHEMA ps_other;
CREATE TABLE public.ps_audit (tbl text, id int);
CREATE TABLE ps_other.ps_audit (tbl text, id int);
CREATE FUNCTION public.ps_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO ps_audit VALUES (TG_TABLE_NAME, NEW.id);
	RETURN NEW;
END $$;
CREATE TRIGGER audit BEFORE UPDATE ON ps_ser_path FOR EACH ROW EXECUTE FUNCTION public.ps_audit_row();
CREATE TRIGGER audit BEFORE UPDATE ON ps_par_path FOR EACH ROW EXECUTE FUNCTION public.ps_audit_row();
SET search_path = ps_other, public;
CALL safe_backfill('ps_ser_path', 'v', 'x', 1000);
CALL safe_backfill('ps_par_path', 'v', 'x', 1000, workers => 2);
RESET search_path;
SELECT 'public' AS schema, tbl, count(*) FROM public.ps_audit GROUP BY tbl
UNION ALL
SELECT 'ps_other', tbl, count(*) FROM ps_other.ps_audit GROUP BY tbl ORDER BY 1, 2;

-- session_replication_role = replica: ordinary triggers do not fire
SELECT ps_pair('replica', 'text');
ALTER TABLE ps_ser_replica ADD COLUMN touched boolean;
ALTER TABLE ps_par_replica ADD COLUMN touched boolean;
CREATE FUNCTION ps_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.touched := true;
	RETURN NEW;
END $$;
CREATE TRIGGER touch BEFORE UPDATE ON ps_ser_replica FOR EACH ROW EXECUTE FUNCTION ps_touch();
CREATE TRIGGER touch BEFORE UPDATE ON ps_par_replica FOR EACH ROW EXECUTE FUNCTION ps_touch();
SET session_replication_role = replica;
CALL safe_backfill('ps_ser_replica', 'v', 'x', 1000);
CALL safe_backfill('ps_par_replica', 'v', 'x', 1000, workers => 2);
RESET session_replication_role;
SELECT ps_differences('replica'),
       (SELECT count(touched) FROM ps_ser_replica) AS ser_touched,
       (SELECT count(touched) FROM ps_par_replica) AS par_touched;

-- safe_backfill.reuse_space = off: every new row version goes to a new page
-- (wide rows, as reuse shows on them: with reuse on the table grows about 1.2x)
CREATE TABLE ps_ser_reuse (id int PRIMARY KEY, pad text, v text) WITH (autovacuum_enabled = off);
INSERT INTO ps_ser_reuse SELECT g, repeat('p', 200) FROM generate_series(1, 20000) g;
CREATE TABLE ps_par_reuse (LIKE ps_ser_reuse INCLUDING ALL) WITH (autovacuum_enabled = off);
INSERT INTO ps_par_reuse SELECT * FROM ps_ser_reuse;
CREATE TABLE ps_sizes (tbl text PRIMARY KEY, before bigint);
INSERT INTO ps_sizes VALUES ('ps_ser_reuse', pg_table_size('ps_ser_reuse')), ('ps_par_reuse', pg_table_size('ps_par_reuse'));
SET safe_backfill.reuse_space = off;
CALL safe_backfill('ps_ser_reuse', 'v', 'x', 1000);
CALL safe_backfill('ps_par_reuse', 'v', 'x', 1000, workers => 2);
RESET safe_backfill.reuse_space;
SELECT tbl, pg_table_size(tbl::regclass) > 1.8 * before AS table_doubled FROM ps_sizes ORDER BY tbl;

-- SET ROLE: the workers run as the caller's current role, in its session
SELECT ps_pair('role', 'text');
ALTER TABLE ps_ser_role ADD COLUMN who text;
ALTER TABLE ps_par_role ADD COLUMN who text;
CREATE FUNCTION ps_who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.who := current_user || ' in a session of ' || session_user;
	RETURN NEW;
END $$;
CREATE TRIGGER who BEFORE UPDATE ON ps_ser_role FOR EACH ROW EXECUTE FUNCTION ps_who();
CREATE TRIGGER who BEFORE UPDATE ON ps_par_role FOR EACH ROW EXECUTE FUNCTION ps_who();
CREATE ROLE regress_ps_filler;
GRANT SELECT, UPDATE ON ps_ser_role, ps_par_role TO regress_ps_filler;
SET ROLE regress_ps_filler;
CALL safe_backfill('ps_ser_role', 'v', 'x', 1000);
CALL safe_backfill('ps_par_role', 'v', 'x', 1000, workers => 2);
RESET ROLE;
SELECT ps_differences('role'), (SELECT count(*) FROM ps_ser_role s JOIN ps_par_role p USING (id) WHERE s.who IS DISTINCT FROM p.who) AS who_differs,
       (SELECT DISTINCT who = 'regress_ps_filler in a session of ' || session_user FROM ps_par_role) AS as_caller;
DROP OWNED BY regress_ps_filler;
DROP ROLE regress_ps_filler;

-- a date and a timestamptz primary key in a DMY / Asia/Kolkata session: the
-- range bounds go to the workers as they are, the jobs tables keep them in
-- one canonical form (ISO, UTC), whatever the session's settings
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Kolkata';
CREATE TABLE ps_date (id date PRIMARY KEY, v text);
INSERT INTO ps_date SELECT date '2000-01-01' + g FROM generate_series(0, 5999) g;
CALL safe_backfill('ps_date', 'v', 'x', 1000, workers => 2);
CREATE TABLE ps_tstz (id timestamptz PRIMARY KEY, v text);
INSERT INTO ps_tstz SELECT timestamptz '2024-01-01 00:00+05:30' + g * interval '37 minutes' FROM generate_series(0, 5999) g;
CALL safe_backfill('ps_tstz', 'v', 'x', 1000, workers => 2);
SELECT count(v) AS filled, count(*) FROM ps_date;
SELECT count(v) AS filled, count(*) FROM ps_tstz;
SELECT j.table_name, r.range_no, r.end_key FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
WHERE j.table_name IN ('public.ps_date', 'public.ps_tstz') ORDER BY 1, 2;

-- interrupted in that session, resumed from another one with other settings:
-- serially, then in parallel; every row is written exactly once
CREATE TABLE ps_fail_at (tbl text PRIMARY KEY, id numeric);
CREATE TABLE ps_writes (tbl text, id numeric);
CREATE FUNCTION ps_fail_or_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT FROM ps_fail_at f WHERE f.tbl = TG_TABLE_NAME AND f.id = extract(epoch FROM NEW.id)) THEN
		RAISE EXCEPTION 'ps: stopped at %', NEW.id USING ERRCODE = 'P0042';
	END IF;
	INSERT INTO ps_writes VALUES (TG_TABLE_NAME, extract(epoch FROM NEW.id));
	RETURN NEW;
END $$;
UPDATE ps_date SET v = NULL;
UPDATE ps_tstz SET v = NULL;
CREATE TRIGGER fail_or_log BEFORE UPDATE ON ps_date FOR EACH ROW EXECUTE FUNCTION ps_fail_or_log();
CREATE TRIGGER fail_or_log BEFORE UPDATE ON ps_tstz FOR EACH ROW EXECUTE FUNCTION ps_fail_or_log();
INSERT INTO ps_fail_at SELECT 'ps_date', extract(epoch FROM date '2000-01-01' + 2345);
INSERT INTO ps_fail_at SELECT 'ps_tstz', extract(epoch FROM timestamptz '2024-01-01 00:00+05:30' + 4500 * interval '37 minutes');
CALL safe_backfill('ps_date', 'v', 'y', 1000);
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ps_tstz', 'v', 'y', 1000, workers => 2);
\echo :LAST_ERROR_SQLSTATE
SELECT p.table_name, p.state IN ('failed', 'interrupted') AS stopped, j.last_key FROM safe_backfill_progress p
JOIN safe_backfill_jobs j USING (id)
WHERE p.table_name IN ('public.ps_date', 'public.ps_tstz') AND j.value_text = 'y' ORDER BY 1;
-- the range that failed stopped after its second batch
SELECT r.range_no, r.last_key, r.end_key, r.done FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
WHERE j.table_name = 'public.ps_tstz' AND j.value_text = 'y' AND r.range_no = 2;
\c
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
SET DateStyle = 'Postgres, MDY';
SET TimeZone = 'America/New_York';
SET IntervalStyle = 'iso_8601';
TRUNCATE ps_fail_at;
-- (quiet: the NOTICEs name the run's id)
SET client_min_messages = warning;
CALL safe_backfill('ps_date', 'v', 'y', 1000);
CALL safe_backfill('ps_tstz', 'v', 'y', 1000, workers => 2);
RESET client_min_messages;
SELECT count(*) FILTER (WHERE v = 'y') AS filled, count(*) FROM ps_date;
SELECT count(*) FILTER (WHERE v = 'y') AS filled, count(*) FROM ps_tstz;
SELECT tbl, count(*) AS writes, count(DISTINCT id) AS rows_written FROM ps_writes GROUP BY tbl ORDER BY tbl;
SELECT table_name, state, count(*) AS runs FROM safe_backfill_jobs
WHERE table_name IN ('public.ps_date', 'public.ps_tstz') AND value_text = 'y' GROUP BY 1, 2 ORDER BY 1;
RESET ALL;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;

-- a worker that fails before its first range, while it restores the
-- caller's settings: the call raises the worker's error and SQLSTATE, and
-- nothing is written
CREATE TABLE ps_early (id int PRIMARY KEY, v text);
INSERT INTO ps_early SELECT generate_series(1, 5000);
CREATE TEXT SEARCH CONFIGURATION ps_gone (COPY = simple);
SET default_text_search_config = 'public.ps_gone';
DROP TEXT SEARCH CONFIGURATION ps_gone;
CALL safe_backfill('ps_early', 'v', 'x', 1000, workers => 2);
\echo :LAST_ERROR_SQLSTATE
RESET default_text_search_config;
SELECT count(v) AS filled FROM ps_early;

-- a temporary table is this session's alone: filled here, saying why
CREATE TEMP TABLE ps_temp (id int PRIMARY KEY, v text);
INSERT INTO ps_temp SELECT generate_series(1, 5000);
CALL safe_backfill('ps_temp', 'v', 'x', 1000, workers => 2);
SELECT count(v) AS filled FROM ps_temp;

-- the split reads the table as it is, not stale statistics: 50,000 rows
-- analyzed and then all updated (the estimate doubles), and a table whose
-- rows were mostly deleted since it was analyzed
CREATE TABLE ps_stale (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
INSERT INTO ps_stale SELECT generate_series(1, 50000);
ANALYZE ps_stale;
UPDATE ps_stale SET v = NULL;
-- (quiet: how many of 8 workers can start depends on the other background workers)
SET client_min_messages = warning;
CALL safe_backfill('ps_stale', 'v', 'x', 1000, workers => 8);
RESET client_min_messages;
CREATE TABLE ps_dead (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
INSERT INTO ps_dead SELECT generate_series(1, 200000);
ANALYZE ps_dead;
DELETE FROM ps_dead WHERE id % 8 <> 0;
CALL safe_backfill('ps_dead', 'v', 'x', 1000, workers => 4);
SELECT j.table_name, count(*) AS ranges, bool_and(r.done) AS all_done, bool_and(r.rows_done > 0) AS each_filled_rows
FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
WHERE j.table_name IN ('public.ps_stale', 'public.ps_dead') GROUP BY 1 ORDER BY 1;
SELECT count(*) FILTER (WHERE v IS NULL) AS nulls FROM ps_stale;
SELECT count(*) FILTER (WHERE v IS NULL) AS nulls FROM ps_dead;

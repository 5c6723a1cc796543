-- expression => '...' runs the tree analysed before the first batch, not
-- its text: a function or an operator created mid-run in a schema of the
-- caller's search_path, a search_path or standard_conforming_strings
-- changed mid-run cannot change what the expression calls or means.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS safe_backfill;
RESET client_min_messages;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
SET safe_backfill.hot_rounds = 1;
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------
-- a function of the expression that, on its first call, creates
-- public.lower(varchar) (an exact match for lower(name) on a varchar,
-- where pg_catalog.lower(text) needs a cast) and a schema (which makes
-- every kept plan be analysed again before its next run)
CREATE TABLE et_fn (id int PRIMARY KEY, name varchar(20), c text);
INSERT INTO et_fn SELECT g, 'Name' || g FROM generate_series(1, 30) g;
CREATE FUNCTION et_arm_lower() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	-- parallel workers call it too: one creates, the others wait and see it
	PERFORM pg_advisory_xact_lock(4242);
	IF to_regprocedure('public.lower(character varying)') IS NULL THEN
		EXECUTE $f$CREATE FUNCTION public.lower(varchar) RETURNS text
			LANGUAGE sql AS 'SELECT ''PWNED''::text'$f$;
		CREATE SCHEMA et_replan;
	END IF;
	RETURN '';
END $$;
CALL safe_backfill('et_fn', 'c', expression => 'lower(name) || et_arm_lower()', batch_size => 10);
SELECT count(*) FILTER (WHERE c = lower(name::text)) AS right,
       count(*) FILTER (WHERE c = 'PWNED') AS pwned, count(*) AS rows FROM et_fn;
-- a later call analyses the text again and finds the new function: that is
-- the caller's business, the run above was not
DROP FUNCTION public.lower(varchar);
DROP SCHEMA et_replan;
DROP TABLE et_fn;

-- the same with an operator: public.||(varchar, varchar)
CREATE TABLE et_op (id int PRIMARY KEY, a varchar(10), b varchar(10), c text);
INSERT INTO et_op SELECT g, 'a' || g, 'b' || g FROM generate_series(1, 30) g;
CREATE FUNCTION et_pwned(varchar, varchar) RETURNS text LANGUAGE sql AS $$SELECT 'PWNED'::text$$;
CREATE FUNCTION et_arm_concat() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF to_regoperator('public.||(character varying,character varying)') IS NULL THEN
		CREATE OPERATOR public.|| (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = et_pwned);
	END IF;
	RETURN '';
END $$;
CALL safe_backfill('et_op', 'c', expression => '(a || b) || et_arm_concat()', batch_size => 10);
SELECT count(*) FILTER (WHERE c = a::text || b::text) AS right,
       count(*) FILTER (WHERE c = 'PWNED') AS pwned, count(*) AS rows FROM et_op;
DROP OPERATOR public.|| (varchar, varchar);
DROP TABLE et_op;
DROP FUNCTION et_pwned(varchar, varchar);

-- the same in parallel workers, which run the tree the caller's session
-- analysed, not the text analysed again
CREATE TABLE et_par (id int PRIMARY KEY, name varchar(20), c text);
INSERT INTO et_par SELECT g, 'Name' || g FROM generate_series(1, 20000) g;
CALL safe_backfill('et_par', 'c', expression => 'lower(name) || et_arm_lower()',
                   batch_size => 1000, workers => 2);
SELECT count(*) FILTER (WHERE c = lower(name::text)) AS right,
       count(*) FILTER (WHERE c = 'PWNED') AS pwned, count(*) AS rows FROM et_par;
DROP FUNCTION public.lower(varchar);
DROP SCHEMA et_replan;
DROP TABLE et_par;

-- ---------------------------------------------------------------------
-- standard_conforming_strings turned off by the expression mid-run: its
-- literals were read once, before the first batch; every row gets the
-- same value
CREATE TABLE et_scs (id int PRIMARY KEY, c text);
INSERT INTO et_scs SELECT g FROM generate_series(1, 30) g;
SET escape_string_warning = off;
CALL safe_backfill('et_scs', 'c', batch_size => 10, expression => $$CASE WHEN
  set_config('standard_conforming_strings', 'off', false) IS NOT NULL THEN '\' || '--'
  || 'z' END$$);
RESET standard_conforming_strings;
RESET escape_string_warning;
SELECT c, count(*) FROM et_scs GROUP BY c ORDER BY c;
DROP TABLE et_scs;

-- search_path changed by the expression mid-run: tag() is still the
-- function found before the first batch
CREATE SCHEMA et_sp1;
CREATE SCHEMA et_sp2;
CREATE FUNCTION et_sp1.tag() RETURNS text LANGUAGE plpgsql AS
  $$BEGIN PERFORM set_config('search_path', 'et_sp2, public', false); RETURN 'one'; END$$;
CREATE FUNCTION et_sp2.tag() RETURNS text LANGUAGE sql AS $$SELECT 'two'$$;
CREATE TABLE et_sp (id int PRIMARY KEY, c text);
INSERT INTO et_sp SELECT g FROM generate_series(1, 30) g;
SET search_path = et_sp1, public;
CALL safe_backfill('et_sp', 'c', expression => 'tag()', batch_size => 10);
RESET search_path;
SELECT c, count(*) FROM et_sp GROUP BY c ORDER BY c;
DROP TABLE et_sp;
DROP SCHEMA et_sp1, et_sp2 CASCADE;

-- ---------------------------------------------------------------------
-- a function of the expression dropped mid-run: the run stops with a
-- clear error, the batches committed before stay, the failure is recorded
CREATE TABLE et_drop (id int PRIMARY KEY, c text);
INSERT INTO et_drop SELECT g FROM generate_series(1, 30) g;
CREATE FUNCTION et_gone(int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF $1 = 10 THEN
		DROP FUNCTION et_gone(int);
	END IF;
	RETURN 'v' || $1;
END $$;
CALL safe_backfill('et_drop', 'c', expression => 'et_gone(id)', batch_size => 10);
\echo :LAST_ERROR_SQLSTATE
SELECT count(c) AS filled FROM et_drop;
SELECT state, error FROM safe_backfill_jobs WHERE table_name = 'public.et_drop';
DROP TABLE et_drop;

-- a table a subquery of the expression reads, renamed mid-run: the tree
-- names it by OID, so the run goes on reading it
CREATE TABLE et_parent (id int PRIMARY KEY, v text);
INSERT INTO et_parent SELECT g, 'p' || g FROM generate_series(1, 30) g;
CREATE TABLE et_child (id int PRIMARY KEY, c text);
INSERT INTO et_child SELECT g FROM generate_series(1, 30) g;
CREATE FUNCTION et_rename() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF to_regclass('et_parent_renamed') IS NULL THEN
		ALTER TABLE et_parent RENAME TO et_parent_renamed;
		CREATE TABLE et_parent (id int PRIMARY KEY, v text);
		INSERT INTO et_parent SELECT g, 'WRONG' FROM generate_series(1, 30) g;
	END IF;
	RETURN '';
END $$;
CALL safe_backfill('et_child', 'c', batch_size => 10,
  expression => '(SELECT p.v FROM et_parent p WHERE p.id = et_child.id) || et_rename()');
SELECT count(*) FILTER (WHERE c = 'p' || id) AS right, count(*) AS rows FROM et_child;
DROP TABLE et_child, et_parent, et_parent_renamed;
DROP FUNCTION et_rename(), et_arm_lower(), et_arm_concat();

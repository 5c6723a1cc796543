-- PostgreSQL 18 promotes a column through a NOT NULL constraint, earlier
-- versions through a CHECK: the expected files differ by the path, and this
-- line pins each file to its own (a fallback to the other path fails).
SELECT current_setting('server_version_num')::int >= 180000 AS native_not_null;
-- expression => '...': a value computed for each row.  Every kind of
-- expression, on a table with a primary key, a composite key and no key,
-- gives the same table as a plain UPDATE ... WHERE col IS NULL on a copy;
-- everything refused is refused before any row changes.
-- Run ids appear in the NOTICEs and below: this file records its runs in a
-- database of its own, so they are numbered from 1 whatever ran before, and
-- the runs other tests recorded are left alone.  Its queries look at the runs
-- on its own tables only.
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_expression_runs;
RESET client_min_messages;
CREATE DATABASE regress_expression_runs;
\c regress_expression_runs
SET lc_messages = 'C';
CREATE EXTENSION safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- the parent table the denormalising expressions read
CREATE TABLE ex_parent (id int PRIMARY KEY, namespace_id int);
INSERT INTO ex_parent SELECT g, 1000 + g FROM generate_series(1, 90) g;

-- one table per way of walking it; 12 rows without an email, a tenth of the
-- rows with a project_id that has no parent row
CREATE FUNCTION ex_make(tbl text, keys text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (a int NOT NULL, b int NOT NULL, email text, first text, last text,'
				   ' legacy bool, payload jsonb, project_id int, c_lower text, c_full text, c_plan text,'
				   ' c_amount numeric, c_uuid uuid, c_ns int, c_max int, c_qual text%s)', tbl, keys);
	EXECUTE format($i$INSERT INTO %I (a, b, email, first, last, legacy, payload, project_id)
		SELECT g / 7, g %% 7, CASE WHEN g %% 83 = 0 THEN NULL ELSE 'User' || g || '@Example.COM' END,
			   'First' || g, 'Last' || g, g %% 3 = 0,
			   jsonb_build_object('amount', (g * 1.25)::text), g %% 100
		FROM generate_series(1, 1000) g$i$, tbl);
END $$;
SELECT ex_make('ex_pk', ', PRIMARY KEY (a, b)');
ALTER TABLE ex_pk DROP CONSTRAINT ex_pk_pkey, ADD COLUMN id serial PRIMARY KEY;
SELECT ex_make('ex_comp', ', PRIMARY KEY (a, b)');
SELECT ex_make('ex_nokey', '');

-- a copy to fill with plain UPDATEs, aliased as the original so that a
-- qualified column reads the same
CREATE FUNCTION ex_copy(tbl text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I AS SELECT * FROM %I', tbl || '_copy', tbl);
END $$;
CREATE FUNCTION ex_update_copy(tbl text, col text, expr text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('UPDATE %I AS %I SET %I = %s WHERE %I IS NULL', tbl || '_copy', tbl, col, expr, col);
END $$;
-- rows of the table not in the copy, and of the copy not in the table (all
-- columns but the uuid, which is random)
CREATE FUNCTION ex_differences(tbl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	cols text := 'a, b, email, first, last, legacy, payload, project_id, c_lower, c_full, c_plan, c_amount, c_ns, c_max, c_qual';
	only_table bigint;
	only_copy bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM (SELECT %s FROM %I EXCEPT ALL SELECT %s FROM %I) x',
				   cols, tbl, cols, tbl || '_copy') INTO only_table;
	EXECUTE format('SELECT count(*) FROM (SELECT %s FROM %I EXCEPT ALL SELECT %s FROM %I) x',
				   cols, tbl || '_copy', cols, tbl) INTO only_copy;
	RETURN format('%s rows only in the table, %s only in the copy', only_table, only_copy);
END $$;

-- the expressions, the same for every table (:tbl stands for its name)
\set e_lower 'lower(email)'
\set e_full 'first || '' '' || last'
\set e_plan 'CASE WHEN legacy THEN ''pro'' ELSE ''free'' END'
\set e_amount '(payload->>''amount'')::numeric'

-- ---------------------------------------------------------------------
-- a primary key
\set tbl ex_pk
SELECT ex_copy(:'tbl');
-- rows the expression gives NULL for are not rewritten: same ctid after
CREATE TABLE ex_null_rows AS SELECT id, ctid AS before FROM ex_pk WHERE email IS NULL;
CALL safe_backfill(:'tbl', 'c_lower', expression => :'e_lower', batch_size => 100);
SELECT count(*) AS null_rows, count(*) FILTER (WHERE t.ctid = n.before) AS not_rewritten
FROM ex_null_rows n JOIN ex_pk t USING (id);
-- a second call writes nothing, reports them again and ends (no endless sweep)
CALL safe_backfill(:'tbl', 'c_lower', expression => :'e_lower', batch_size => 100);
SELECT state, phase, rows_done, value_text, expression FROM safe_backfill_jobs
WHERE table_name = 'public.ex_pk' ORDER BY id;
CALL safe_backfill(:'tbl', 'c_full', expression => :'e_full', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_plan', expression => :'e_plan', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_amount', expression => :'e_amount', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_uuid', expression => 'gen_random_uuid()', batch_size => 100);
-- correlated scalar subquery over the parent, the row's column qualified
-- with the table's name
CALL safe_backfill(:'tbl', 'c_ns', expression => '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = ' || :'tbl' || '.project_id)', batch_size => 100);
-- uncorrelated subquery
CALL safe_backfill(:'tbl', 'c_max', expression => '(SELECT max(namespace_id) FROM ex_parent)', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_qual', expression => 'upper(' || :'tbl' || '.email)', batch_size => 100);
SELECT ex_update_copy(:'tbl', 'c_lower', :'e_lower'), ex_update_copy(:'tbl', 'c_full', :'e_full'),
       ex_update_copy(:'tbl', 'c_plan', :'e_plan'), ex_update_copy(:'tbl', 'c_amount', :'e_amount'),
       ex_update_copy(:'tbl', 'c_ns', '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = ' || :'tbl' || '.project_id)'),
       ex_update_copy(:'tbl', 'c_max', '(SELECT max(namespace_id) FROM ex_parent)'),
       ex_update_copy(:'tbl', 'c_qual', 'upper(' || :'tbl' || '.email)');
SELECT ex_differences(:'tbl');
SELECT count(*) AS rows, count(c_uuid) AS uuids, count(DISTINCT c_uuid) AS distinct_uuids FROM ex_pk;
SELECT count(*) FILTER (WHERE c_plan = 'pro') AS pro, sum(c_amount) AS amount,
       count(c_ns) AS with_parent FROM ex_pk;

-- ---------------------------------------------------------------------
-- a composite key
\set tbl ex_comp
SELECT ex_copy(:'tbl');
CALL safe_backfill(:'tbl', 'c_lower', expression => :'e_lower', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_full', expression => :'e_full', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_plan', expression => :'e_plan', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_amount', expression => :'e_amount', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_uuid', expression => 'gen_random_uuid()', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_ns', expression => '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = ' || :'tbl' || '.project_id)', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_max', expression => '(SELECT max(namespace_id) FROM ex_parent)', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_qual', expression => 'upper(' || :'tbl' || '.email)', batch_size => 100);
SELECT ex_update_copy(:'tbl', 'c_lower', :'e_lower'), ex_update_copy(:'tbl', 'c_full', :'e_full'),
       ex_update_copy(:'tbl', 'c_plan', :'e_plan'), ex_update_copy(:'tbl', 'c_amount', :'e_amount'),
       ex_update_copy(:'tbl', 'c_ns', '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = ' || :'tbl' || '.project_id)'),
       ex_update_copy(:'tbl', 'c_max', '(SELECT max(namespace_id) FROM ex_parent)'),
       ex_update_copy(:'tbl', 'c_qual', 'upper(' || :'tbl' || '.email)');
SELECT ex_differences(:'tbl');
SELECT count(*) AS rows, count(c_uuid) AS uuids, count(DISTINCT c_uuid) AS distinct_uuids FROM ex_comp;

-- ---------------------------------------------------------------------
-- no key: ranges of heap blocks
\set tbl ex_nokey
SELECT ex_copy(:'tbl');
CALL safe_backfill(:'tbl', 'c_lower', expression => :'e_lower', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_full', expression => :'e_full', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_plan', expression => :'e_plan', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_amount', expression => :'e_amount', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_uuid', expression => 'gen_random_uuid()', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_ns', expression => '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = ' || :'tbl' || '.project_id)', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_max', expression => '(SELECT max(namespace_id) FROM ex_parent)', batch_size => 100);
CALL safe_backfill(:'tbl', 'c_qual', expression => 'upper(' || :'tbl' || '.email)', batch_size => 100);
SELECT ex_update_copy(:'tbl', 'c_lower', :'e_lower'), ex_update_copy(:'tbl', 'c_full', :'e_full'),
       ex_update_copy(:'tbl', 'c_plan', :'e_plan'), ex_update_copy(:'tbl', 'c_amount', :'e_amount'),
       ex_update_copy(:'tbl', 'c_ns', '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = ' || :'tbl' || '.project_id)'),
       ex_update_copy(:'tbl', 'c_max', '(SELECT max(namespace_id) FROM ex_parent)'),
       ex_update_copy(:'tbl', 'c_qual', 'upper(' || :'tbl' || '.email)');
SELECT ex_differences(:'tbl');
SELECT count(*) AS rows, count(c_uuid) AS uuids, count(DISTINCT c_uuid) AS distinct_uuids FROM ex_nokey;

-- ---------------------------------------------------------------------
-- set_not_null => true after rows the expression gave NULL for: refused,
-- saying why; the run itself is done, the column stays nullable
CREATE TABLE ex_nn (id int PRIMARY KEY, email text, email_lower text);
INSERT INTO ex_nn SELECT g, CASE WHEN g % 83 = 0 THEN NULL ELSE 'U' || g END FROM generate_series(1, 1000) g;
\set VERBOSITY default
-- (the summary's DETAIL has timings: this call shows only the error)
SET client_min_messages = warning;
CALL safe_backfill('ex_nn', 'email_lower', expression => 'lower(email)', batch_size => 100, set_not_null => true);
\echo :LAST_ERROR_SQLSTATE
RESET client_min_messages;
\set VERBOSITY terse
SELECT count(*) FILTER (WHERE email_lower IS NULL) AS nulls,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'ex_nn'::regclass AND attname = 'email_lower') AS not_null
FROM ex_nn;
SELECT state, rows_done FROM safe_backfill_progress WHERE table_name = 'public.ex_nn';
-- once every row gets a value, set_not_null goes through
CALL safe_backfill('ex_nn', 'email_lower', expression => $$coalesce(lower(email), 'none')$$, set_not_null => true);
SELECT count(*) FILTER (WHERE email_lower = 'none') AS fallback,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'ex_nn'::regclass AND attname = 'email_lower') AS not_null
FROM ex_nn;

-- ---------------------------------------------------------------------
-- a domain CHECK that one row's value violates: that batch fails with the
-- row's key, earlier batches stay committed, the run is recorded as failed;
-- once the row is fixed the next call resumes after the committed batches
CREATE DOMAIN ex_code AS text CHECK (length(VALUE) <= 8);
CREATE TABLE ex_dom (id int PRIMARY KEY, name text, code ex_code);
INSERT INTO ex_dom SELECT g, CASE WHEN g = 250 THEN 'much too long' ELSE 'n' || g END FROM generate_series(1, 1000) g;
\set VERBOSITY default
CALL safe_backfill('ex_dom', 'code', expression => 'name', batch_size => 100);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT count(code) AS filled, max(id) FILTER (WHERE code IS NOT NULL) AS last_filled FROM ex_dom;
SELECT state, rows_done, error FROM safe_backfill_progress WHERE table_name = 'public.ex_dom';
-- without a key the row is named by its ctid
CREATE TABLE ex_dom_nokey (name text, code ex_code);
INSERT INTO ex_dom_nokey SELECT CASE WHEN g = 250 THEN 'much too long' ELSE 'n' || g END FROM generate_series(1, 1000) g;
\set VERBOSITY default
CALL safe_backfill('ex_dom_nokey', 'code', expression => 'name', batch_size => 100);
\set VERBOSITY terse
SELECT ctid FROM ex_dom_nokey WHERE name = 'much too long';
-- a value run on the same column does not resume the expression run (nor
-- would the reverse): it is a run of its own
UPDATE ex_dom SET name = 'fixed' WHERE id = 250;
CALL safe_backfill('ex_dom', 'code', 'v', 100);
SELECT id, state, value_text, expression, rows_done FROM safe_backfill_jobs
WHERE table_name = 'public.ex_dom' ORDER BY id;
UPDATE ex_dom SET code = NULL WHERE code = 'v';
-- the expression run resumes after its committed batches
CALL safe_backfill('ex_dom', 'code', expression => 'name', batch_size => 100);
SELECT count(*) FILTER (WHERE code IS DISTINCT FROM name) AS wrong FROM ex_dom;
SELECT id, state, value_text, expression FROM safe_backfill_jobs
WHERE table_name = 'public.ex_dom' ORDER BY id;

-- ---------------------------------------------------------------------
-- value and expression: exactly one.  Positional calls keep their meaning.
CREATE TABLE ex_args (id int PRIMARY KEY, status text);
INSERT INTO ex_args SELECT generate_series(1, 10);
\set VERBOSITY default
CALL safe_backfill('ex_args', 'status', 'active', expression => 'lower(status)');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_args', 'status');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_args', 'status', value => NULL, batch_size => 5);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT count(status) AS changed FROM ex_args;
-- 'lower(status)' as the third positional argument is a value, written as is
CALL safe_backfill('ex_args', 'status', 'lower(status)', 5);
SELECT DISTINCT status FROM ex_args;
UPDATE ex_args SET status = NULL;
CALL safe_backfill('ex_args', 'status', NULL, 5, expression => $$'computed'$$);
UPDATE ex_args SET status = NULL WHERE id > 5;
CALL safe_backfill(tbl => 'ex_args', col => 'status', expression => $$'named'$$);
SELECT status, count(*) FROM ex_args GROUP BY status ORDER BY status;

-- ---------------------------------------------------------------------
-- refused before any row changes, each pointing into the expression; no
-- run is recorded (no run started), the table is unchanged
CREATE TABLE ex_ref (id int PRIMARY KEY, email text, n int, c text, d date);
INSERT INTO ex_ref SELECT g, 'e' || g, g FROM generate_series(1, 10) g;
\set VERBOSITY default
-- injection: a second statement, closing the parenthesis, a comment
CALL safe_backfill('ex_ref', 'c', expression => '1); DROP TABLE ex_ref; --');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'email; DROP TABLE ex_ref');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'email /* DROP TABLE ex_ref');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'email) WHERE false --');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'email FROM ex_ref WHERE false');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'email, email');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'email AS c');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'ex_ref.*');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => '');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => '$1');
\echo :LAST_ERROR_SQLSTATE
-- not for one row at a time
CALL safe_backfill('ex_ref', 'n', expression => 'count(*)');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'n', expression => 'row_number() OVER (ORDER BY id)');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'n', expression => '1 + generate_series(1, 2)');
\echo :LAST_ERROR_SQLSTATE
-- names and types
CALL safe_backfill('ex_ref', 'c', expression => 'lower(no_such_column)');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'c', expression => 'other_table.email');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'd', expression => 'n + 1');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_ref', 'n', expression => $$'not a number'$$);
\echo :LAST_ERROR_SQLSTATE
-- caught by the planner before the first batch
CALL safe_backfill('ex_ref', 'n', expression => '1 / 0');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT count(*) AS rows, count(c) AS c, count(d) AS d FROM ex_ref;
SELECT count(*) AS runs FROM safe_backfill_jobs WHERE table_name = 'public.ex_ref';
-- a comment at the end is fine: it cannot swallow the rest of the statement
CALL safe_backfill('ex_ref', 'c', expression => 'upper(email) -- the rest is a comment');
SELECT count(*) FILTER (WHERE c = upper(email)) AS filled FROM ex_ref;
-- a subquery that locks the rows it reads (FOR SHARE) is the caller's
-- choice, as in an UPDATE: not refused by the check before the first batch
ALTER TABLE ex_ref ADD COLUMN lk int;
CALL safe_backfill('ex_ref', 'lk', expression => '(SELECT p.namespace_id FROM ex_parent p WHERE p.id = 1 FOR SHARE)');
SELECT count(*) FILTER (WHERE lk = 1001) AS filled FROM ex_ref;

-- ---------------------------------------------------------------------
-- the expression runs as the caller, with the caller's privileges only
CREATE ROLE regress_ex_caller;
CREATE TABLE ex_priv (id int PRIMARY KEY, who name, secret text);
INSERT INTO ex_priv SELECT generate_series(1, 10);
CREATE TABLE ex_secret (s text);
INSERT INTO ex_secret VALUES ('hidden');
GRANT SELECT, UPDATE ON ex_priv TO regress_ex_caller;
SET ROLE regress_ex_caller;
-- no SELECT on ex_secret: refused before any row changes
CALL safe_backfill('ex_priv', 'secret', expression => '(SELECT s FROM ex_secret)');
\echo :LAST_ERROR_SQLSTATE
CALL safe_backfill('ex_priv', 'who', expression => 'current_user');
RESET ROLE;
SELECT count(secret) AS secrets, count(*) FILTER (WHERE who = 'regress_ex_caller') AS as_caller FROM ex_priv;
SELECT username, state FROM safe_backfill_jobs WHERE table_name = 'public.ex_priv';
-- an error of the expression can carry what it read (here a value of
-- ex_secret): safe_backfill_progress shows it to the caller's role only,
-- not to a role that may read the table filled but not what the expression
-- read
CREATE ROLE regress_ex_reader;
GRANT SELECT ON ex_priv TO regress_ex_reader;
GRANT SELECT ON ex_secret TO regress_ex_caller;
ALTER TABLE ex_priv ADD COLUMN n int;
SET ROLE regress_ex_caller;
CALL safe_backfill('ex_priv', 'n', expression => '(SELECT s FROM ex_secret)::int');
SELECT state, error FROM safe_backfill_progress WHERE table_name = 'public.ex_priv' AND column_name = 'n';
SET ROLE regress_ex_reader;
SELECT state, error FROM safe_backfill_progress WHERE table_name = 'public.ex_priv' AND column_name = 'n';
RESET ROLE;
SELECT count(n) AS filled FROM ex_priv;
DROP TABLE ex_priv, ex_secret;
DROP ROLE regress_ex_caller, regress_ex_reader;

-- ---------------------------------------------------------------------
-- workers => 2 give the same results as a run in this session: a function
-- found through search_path and a cast that depends on DateStyle, analysed
-- and computed in the workers under the caller's settings
CREATE SCHEMA ex_a;
CREATE SCHEMA ex_b;
CREATE FUNCTION ex_a.tag() RETURNS text LANGUAGE sql AS $$SELECT 'a'$$;
CREATE FUNCTION ex_b.tag() RETURNS text LANGUAGE sql AS $$SELECT 'b'$$;
CREATE TABLE ex_ser (id int PRIMARY KEY, d date, v text);
INSERT INTO ex_ser SELECT g, date '2024-02-01' + g % 3 FROM generate_series(1, 20000) g;
CREATE TABLE ex_par AS SELECT * FROM ex_ser;
ALTER TABLE ex_par ADD PRIMARY KEY (id);
SET search_path = ex_b, public;
SET DateStyle = 'SQL, DMY';
CALL safe_backfill('ex_ser', 'v', expression => $$tag() || ' ' || d::text$$, batch_size => 1000);
CALL safe_backfill('ex_par', 'v', expression => $$tag() || ' ' || d::text$$, batch_size => 1000, workers => 2);
RESET DateStyle;
RESET search_path;
SELECT count(*) AS differences FROM ex_ser s FULL JOIN ex_par p USING (id) WHERE s.v IS DISTINCT FROM p.v;
SELECT v, count(*) FROM ex_par GROUP BY v ORDER BY v;

-- ---------------------------------------------------------------------
-- columns named like the aliases of the statement built around the
-- expression, and a table named like its subquery: still only names
CREATE TABLE safe_backfill_new (id int PRIMARY KEY, safe_backfill_rel int,
    safe_backfill_tid int, safe_backfill_value int);
INSERT INTO safe_backfill_new SELECT g, g, g FROM generate_series(1, 30) g;
CALL safe_backfill('safe_backfill_new', 'safe_backfill_value',
                   expression => 'safe_backfill_rel + safe_backfill_tid', batch_size => 10);
SELECT count(*) FILTER (WHERE safe_backfill_value = 2 * id) AS right, count(*) AS rows
  FROM safe_backfill_new;
CREATE TABLE ex_alias (safe_backfill_rel int, safe_backfill_value int);
INSERT INTO ex_alias SELECT g FROM generate_series(1, 30) g;
CALL safe_backfill('ex_alias', 'safe_backfill_value', expression => '-safe_backfill_rel');
SELECT count(*) FILTER (WHERE safe_backfill_value = -safe_backfill_rel) AS right, count(*) AS rows
  FROM ex_alias;
DROP TABLE safe_backfill_new, ex_alias;

-- ---------------------------------------------------------------------
-- workers => 2 with an expression that reads a temporary table: its rows
-- live in this session's local buffers, which workers cannot read (they
-- would see no row, or stale pages): the run stays in this session
CREATE TABLE ex_tmp (id int PRIMARY KEY, c int);
INSERT INTO ex_tmp SELECT g FROM generate_series(1, 20000) g;
CREATE TEMP TABLE ex_lookup (id int PRIMARY KEY, v int);
INSERT INTO ex_lookup SELECT g, g * 10 FROM generate_series(1, 20000) g;
CALL safe_backfill('ex_tmp', 'c', expression => '(SELECT l.v FROM ex_lookup l WHERE l.id = ex_tmp.id)',
                   workers => 2, batch_size => 1000);
SELECT count(*) FILTER (WHERE c = id * 10) AS right, count(*) AS rows FROM ex_tmp;
-- a temporary sequence is a temporary relation too, named by a regclass
CREATE TEMP SEQUENCE ex_tmp_seq;
ALTER TABLE ex_tmp ADD COLUMN n bigint;
CALL safe_backfill('ex_tmp', 'n', expression => $$nextval('ex_tmp_seq')$$,
                   workers => 2, batch_size => 1000);
SELECT count(DISTINCT n) AS distinct_values, count(*) AS rows FROM ex_tmp;
DROP TABLE ex_tmp, ex_lookup;

-- ---------------------------------------------------------------------
-- text that looks like it closes our parenthesis but is read the same
-- inside the statement as on its own: an E'' string with an escaped
-- quote, a dollar-quoted string, a nested comment, a Unicode-escaped
-- identifier.  Each is only a value for c; n keeps its value.
CREATE TABLE ex_inj (id int PRIMARY KEY, email text, n int, c1 text, c2 text, c3 text, c4 text);
INSERT INTO ex_inj SELECT g, 'e' || g, g FROM generate_series(1, 10) g;
CALL safe_backfill('ex_inj', 'c1', expression => $$E'\') , n = (0'$$);
CALL safe_backfill('ex_inj', 'c2', expression => '$q$) , n = (0$q$');
CALL safe_backfill('ex_inj', 'c3', expression => 'email /* /* */ ) , n = (0 */');
CALL safe_backfill('ex_inj', 'c4', expression => 'U&"\0065mail"');
SELECT count(*) FILTER (WHERE n = id) AS n_kept,
       count(*) FILTER (WHERE c1 = $$') , n = (0$$ AND c2 = ') , n = (0'
                        AND c3 = email AND c4 = email) AS values_right
  FROM ex_inj;
DROP TABLE ex_inj;

\c :regress_db
DROP DATABASE regress_expression_runs;

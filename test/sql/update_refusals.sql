-- safe_update and safe_delete refuse, before any row changes, what is not
-- exactly a set list or a predicate on the table's rows, and what the
-- caller may not do; the table is unchanged after each refusal.
SET safe_backfill.progress_interval = 0;
\set VERBOSITY terse
CREATE TABLE ur (id int PRIMARY KEY, a int, b text, g int GENERATED ALWAYS AS (a * 2) STORED,
                 i int GENERATED ALWAYS AS IDENTITY, arr int[]);
INSERT INTO ur (id, a, b, arr) SELECT x, x, 'b' || x, ARRAY[x] FROM generate_series(1, 10) x;
CREATE TABLE ur_before AS SELECT * FROM ur;
CREATE TABLE ur_other (id int);
CREATE VIEW ur_changed AS
  SELECT count(*) AS changed FROM ((SELECT id, a, b, arr FROM ur) EXCEPT (SELECT id, a, b, arr FROM ur_before)) d;

-- not a set list
CALL safe_update('ur', 'a = 1; DROP TABLE ur_other');
CALL safe_update('ur', 'a = 1 WHERE id = 2');
CALL safe_update('ur', 'a = o.id FROM ur_other o');
CALL safe_update('ur', 'a = 1 RETURNING *');
CALL safe_update('ur', '(a, b) = (1, $$x$$)');
CALL safe_update('ur', 'arr[1] = 5');
CALL safe_update('ur', 'a = DEFAULT');
CALL safe_update('ur', '');
CALL safe_update('ur', 'a = ');
-- not something a row can be set to
CALL safe_update('ur', 'a = count(*)');
CALL safe_update('ur', 'a = row_number() OVER ()');
CALL safe_update('ur', 'a = generate_series(1, 2)');
CALL safe_update('ur', 'a = now()');
CALL safe_update('ur', 'a = b');
-- not a column it may set
CALL safe_update('ur', 'nope = 1');
CALL safe_update('ur', 'ctid = null');
CALL safe_update('ur', 'g = 1');
CALL safe_update('ur', 'i = 1');
CALL safe_update('ur', 'id = id + 100');
CALL safe_update('ur', 'a = 1, a = 2');
-- not a predicate
CALL safe_update('ur', 'a = 1', 'a');
CALL safe_update('ur', 'a = 1', 'a > 1; DELETE FROM ur');
CALL safe_update('ur', 'a = 1', 'a > 1 ORDER BY a');
CALL safe_update('ur', 'a = 1', 'count(*) > 1');
CALL safe_update('ur', 'a = 1', 'nope > 1');
CALL safe_delete('ur', NULL);
CALL safe_delete('ur', 'a > 1 LIMIT 2');
CALL safe_delete('ur', 'id IN (SELECT generate_series(1, 3)) OR a > row_number() OVER ()');
-- arguments
CALL safe_update('ur', NULL);
CALL safe_update('ur', 'a = 1', batch_size => 0);
CALL safe_update('ur', 'a = 1', workers => 65);
BEGIN;
CALL safe_update('ur', 'a = 1');
ROLLBACK;
-- no primary key: safe_update cannot walk by key
CREATE TABLE ur_nokey (a int);
INSERT INTO ur_nokey VALUES (1);
CALL safe_update('ur_nokey', 'a = 2');
SELECT a FROM ur_nokey;
-- not a table
CALL safe_update('ur_changed', 'changed = 1');
SELECT changed FROM ur_changed;
-- nothing was changed by any of them
SELECT changed FROM ur_changed;

-- privileges: what the plain statement would need
CREATE ROLE ur_reader;
GRANT SELECT ON ur TO ur_reader;
SET ROLE ur_reader;
CALL safe_update('ur', 'a = 1');
CALL safe_delete('ur', 'a > 5');
RESET ROLE;
-- UPDATE on the column set, but not SELECT on a column the predicate reads
CREATE ROLE ur_writer;
GRANT SELECT (id, a), UPDATE (a) ON ur TO ur_writer;
GRANT SELECT (ctid) ON ur TO ur_writer;
SET ROLE ur_writer;
CALL safe_update('ur', 'a = a + 1', $$b = 'b3'$$);
CALL safe_update('ur', 'b = $$x$$');
RESET ROLE;
SELECT changed FROM ur_changed;
SET ROLE ur_writer;
-- what it may do, it does
CALL safe_update('ur', 'a = a + 1', 'a < 3');
RESET ROLE;
SELECT id, a FROM ur WHERE id < 4 ORDER BY id;
UPDATE ur SET a = id;
SELECT changed FROM ur_changed;


-- a predicate or set list is parsed, never pasted: text that would change a
-- statement if it were is refused, or is a value.  Pasted into
-- "WHERE <range> AND (<where>)", this one would delete every row.
CALL safe_delete('ur', '1 = 2) OR (true');
CALL safe_update('ur', 'a = 0', '1 = 2) OR (true');
CALL safe_update('ur', 'a = 0 WHERE true --');
SELECT count(*) AS rows, count(*) FILTER (WHERE a = 0) AS zeroed FROM ur;
CALL safe_update('ur', $$b = 'x'' WHERE false; --'$$, 'id = 1');
SELECT b FROM ur WHERE id = 1;

DROP TABLE ur, ur_before, ur_other, ur_nokey CASCADE;
DROP ROLE ur_reader;
DROP ROLE ur_writer;

-- a DO INSTEAD rule would replace each batch's statement: refused, table unchanged
CREATE TABLE ur_ruled (id int PRIMARY KEY, a int);
INSERT INTO ur_ruled SELECT x, x FROM generate_series(1, 5) x;
CREATE RULE ur_keep AS ON DELETE TO ur_ruled DO INSTEAD NOTHING;
CALL safe_delete('ur_ruled', 'a > 2');
-- a dry run changes nothing, so no rule is in the way; a rule on DELETE is not one on UPDATE
CALL safe_delete('ur_ruled', 'a > 2', dry_run => true);
CALL safe_update('ur_ruled', 'a = -a', 'a > 4');
SELECT id, a FROM ur_ruled ORDER BY id;
DROP TABLE ur_ruled;

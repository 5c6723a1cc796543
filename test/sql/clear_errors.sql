-- PostgreSQL 18 promotes a column through a NOT NULL constraint, earlier
-- versions through a CHECK: the expected files differ by the path, and this
-- line pins each file to its own (a fallback to the other path fails).
SELECT current_setting('server_version_num')::int >= 180000 AS native_not_null;
-- Clear errors for what safe_backfill and safe_set_not_null cannot do, and
-- nothing changed when they refuse.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;

-- A DO INSTEAD rule on UPDATE would replace every batch: refused up front.
CREATE TABLE ruled (id int PRIMARY KEY, status text);
INSERT INTO ruled SELECT g, NULL FROM generate_series(1, 50) g;
CREATE TABLE ruled_log (id int);
CREATE RULE ruled_redirect AS ON UPDATE TO ruled DO INSTEAD INSERT INTO ruled_log VALUES (NEW.id);
CALL safe_backfill('ruled', 'status', 'x', 10);
SELECT count(*) AS nulls_left FROM ruled WHERE status IS NULL;
SELECT count(*) AS redirected FROM ruled_log;
-- a conditional DO INSTEAD rule would skip rows: refused too
DROP RULE ruled_redirect ON ruled;
CREATE RULE ruled_skip AS ON UPDATE TO ruled WHERE OLD.id > 40 DO INSTEAD NOTHING;
CALL safe_backfill('ruled', 'status', 'x', 10);
SELECT count(*) AS nulls_left FROM ruled WHERE status IS NULL;
-- disabled, as the hint says: the backfill runs (summaries: no timings)
\set VERBOSITY terse
ALTER TABLE ruled DISABLE RULE ruled_skip;
CALL safe_backfill('ruled', 'status', 'x', 10);
SELECT count(*) AS nulls_left FROM ruled WHERE status IS NULL;
-- a DO ALSO rule leaves the UPDATE in place: accepted
UPDATE ruled SET status = NULL;
CREATE RULE ruled_also AS ON UPDATE TO ruled DO ALSO INSERT INTO ruled_log VALUES (NEW.id);
CALL safe_backfill('ruled', 'status', 'y', 10);
SELECT count(*) FILTER (WHERE status IS NULL) AS nulls_left,
       count(*) FILTER (WHERE status = 'y') AS filled FROM ruled;
DROP TABLE ruled, ruled_log;

-- safe_set_not_null with a NO INHERIT CHECK on a table with children: the
-- children would be scanned under ACCESS EXCLUSIVE, so the CHECK is not used
-- as the proof; a CHECK of its own (inherited) is added, validated and dropped.
CREATE TABLE parent_ni (id int, status text);
CREATE TABLE child_ni () INHERITS (parent_ni);
INSERT INTO parent_ni VALUES (1, 'a');
INSERT INTO child_ni VALUES (2, 'b');
ALTER TABLE parent_ni ADD CONSTRAINT parent_only CHECK (status IS NOT NULL) NO INHERIT;
CALL safe_set_not_null('parent_ni', 'status');
SELECT c.relname, a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE a.attname = 'status' AND c.relname IN ('parent_ni', 'child_ni') ORDER BY 1;
SELECT conrelid::regclass, conname FROM pg_constraint
 WHERE conrelid IN ('parent_ni'::regclass, 'child_ni'::regclass) ORDER BY 1, 2;
DROP TABLE parent_ni CASCADE;
-- without children the NO INHERIT CHECK is a fine proof
CREATE TABLE alone_ni (id int, status text);
INSERT INTO alone_ni VALUES (1, 'a');
ALTER TABLE alone_ni ADD CONSTRAINT alone_only CHECK (status IS NOT NULL) NO INHERIT;
CALL safe_set_not_null('alone_ni', 'status');
DROP TABLE alone_ni;

-- A user's CHECK whose name merely contains the helper's label is the user's:
-- used as the proof, never dropped unless drop_check => true.
CREATE TABLE named (id int, status text);
INSERT INTO named VALUES (1, 'a');
ALTER TABLE named ADD CONSTRAINT my_not_null_safe_backfill_rule CHECK (status IS NOT NULL);
CALL safe_set_not_null('named', 'status');
SELECT conname FROM pg_constraint WHERE conrelid = 'named'::regclass;
DROP TABLE named;

\set VERBOSITY default
-- A CHECK that proves NOT NULL but fails VALIDATE for another reason: the
-- error says so (not "contains 0 null values"); nothing changed.
CREATE TABLE other_reason (id int, status text);
INSERT INTO other_reason VALUES (1, 'a'), (2, 'bad');
ALTER TABLE other_reason ADD CONSTRAINT status_good
  CHECK (status IS NOT NULL AND status <> 'bad') NOT VALID;
-- (on 18 the call succeeds through its own NOT NULL constraint; its NOTICEs carry timings)
SET client_min_messages = warning;
CALL safe_set_not_null('other_reason', 'status');
RESET client_min_messages;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'other_reason'::regclass;
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'other_reason'::regclass AND attname = 'status';
DROP TABLE other_reason;

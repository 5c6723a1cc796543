-- PostgreSQL 18 promotes a column through a NOT NULL constraint, earlier
-- versions through a CHECK: the expected files differ by the path, and this
-- line pins each file to its own (a fallback to the other path fails).
SELECT current_setting('server_version_num')::int >= 180000 AS native_not_null;
-- safe_set_not_null: NOT NULL through a validated CHECK, no scan under
-- ACCESS EXCLUSIVE.  PostgreSQL's own DEBUG1 message proves the scan was
-- skipped: "existing constraints on column ... are sufficient to prove ...".
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse

CREATE VIEW nn_state AS
SELECT c.relname, a.attname, a.attnotnull,
       (SELECT string_agg(conname || CASE WHEN convalidated THEN '' ELSE ' (not valid)' END, ', ' ORDER BY conname)
          FROM pg_constraint WHERE conrelid = c.oid AND contype IN ('c', 'n')
           AND a.attnum = ANY (conkey)) AS checks
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relname LIKE 'nn\_%' AND a.attname = 'status'
ORDER BY 1;

CREATE TABLE nn_users (id bigint PRIMARY KEY, status text);
INSERT INTO nn_users SELECT g, 'active' FROM generate_series(1, 1000) g;
SET client_min_messages = debug1;
CALL safe_set_not_null('nn_users', 'status');
RESET client_min_messages;
SELECT * FROM nn_state;

-- already NOT NULL: a NOTICE and nothing else
CALL safe_set_not_null('nn_users', 'status');

-- NULLs left: VALIDATE fails, the count is reported, the helper is removed
CREATE TABLE nn_holes (id int PRIMARY KEY, status text);
INSERT INTO nn_holes SELECT g, CASE WHEN g % 100 = 0 THEN NULL ELSE 'x' END FROM generate_series(1, 1000) g;
\set VERBOSITY default
CALL safe_set_not_null('nn_holes', 'status');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT * FROM nn_state;
-- the one-shot path: backfill, then promote
CALL safe_backfill('nn_holes', 'status', 'filled', 100, set_not_null => true);
SELECT * FROM nn_state;

-- a user's CHECK that proves it (as Django's CheckConstraint makes), found by
-- its expression: kept by default, dropped on request
CREATE TABLE nn_django (id int PRIMARY KEY, status text,
    CONSTRAINT "status_present" CHECK (status IS NOT NULL AND length(status) > 0));
INSERT INTO nn_django SELECT g, 'a' FROM generate_series(1, 100) g;
SET client_min_messages = debug1;
CALL safe_set_not_null('nn_django', 'status');
RESET client_min_messages;
SELECT * FROM nn_state;
CREATE TABLE nn_django_drop (id int PRIMARY KEY, status text);
INSERT INTO nn_django_drop SELECT g, 'a' FROM generate_series(1, 100) g;
ALTER TABLE nn_django_drop ADD CONSTRAINT user_check CHECK (status IS NOT NULL) NOT VALID;
CALL safe_set_not_null('nn_django_drop', 'status', drop_check => true);
SELECT * FROM nn_state;
-- a CHECK that does not prove it (NULL passes "status <> ''") is not used
CREATE TABLE nn_weak (id int PRIMARY KEY, status text CHECK (status <> ''));
INSERT INTO nn_weak SELECT g, 'a' FROM generate_series(1, 100) g;
CALL safe_set_not_null('nn_weak', 'status', drop_check => false);
SELECT * FROM nn_state;

-- partitioned: every partition gets the CHECK, none is scanned
CREATE TABLE nn_parts (id int, status text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE nn_parts_1 PARTITION OF nn_parts FOR VALUES FROM (0) TO (500);
CREATE TABLE nn_parts_2 PARTITION OF nn_parts FOR VALUES FROM (500) TO (1000);
INSERT INTO nn_parts SELECT g, 'p' FROM generate_series(0, 999) g;
SET client_min_messages = debug1;
CALL safe_set_not_null('nn_parts', 'status');
RESET client_min_messages;
SELECT * FROM nn_state;

-- quoting
CREATE TABLE "nn_Odd ""Table""" ("select" int PRIMARY KEY, status text);
INSERT INTO "nn_Odd ""Table""" VALUES (1, 'x');
CALL safe_set_not_null('"nn_Odd ""Table"""', 'status');
SELECT * FROM nn_state WHERE relname LIKE 'nn_Odd%';

-- errors, before anything changes
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TABLE nn_errors (id int PRIMARY KEY, status text);
BEGIN;
CALL safe_set_not_null('nn_errors', 'status');
ROLLBACK;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL safe_set_not_null('nn_errors', 'no_such');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL safe_set_not_null(NULL, 'status');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL safe_set_not_null('nn_errors', 'status', lock_timeout => '0 ms');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL safe_set_not_null('nn_errors', 'status', lock_timeout => '2 minutes');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL safe_set_not_null('nn_errors', 'status', max_attempts => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE VIEW nn_view AS SELECT * FROM nn_errors;
CALL safe_set_not_null('nn_view', 'status');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE ROLE regress_nn_other;
GRANT SELECT, UPDATE ON nn_errors TO regress_nn_other;
SET ROLE regress_nn_other;
CALL safe_set_not_null('nn_errors', 'status');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the one-shot path checks ownership before it fills a single row
CALL safe_backfill('nn_errors', 'status', 'x', set_not_null => true);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM nn_state WHERE relname = 'nn_errors';
SELECT count(status) FROM nn_errors;
-- (the settings' own ranges: settings.sql)
DROP OWNED BY regress_nn_other;
DROP ROLE regress_nn_other;

-- a NOT VALID constraint of the user's (a CHECK before 18, the column's NOT
-- NULL constraint from 18 on, where attnotnull is already set by it): with
-- NULLs left it stays as it was; safe_backfill still fills the column, then
-- promotes it
CREATE TABLE nn_user_not_valid (id int PRIMARY KEY, status text);
INSERT INTO nn_user_not_valid SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'x' END FROM generate_series(1, 100) g;
DO $$ BEGIN
  EXECUTE CASE WHEN current_setting('server_version_num')::int >= 180000
    THEN 'ALTER TABLE nn_user_not_valid ADD CONSTRAINT user_given NOT NULL status NOT VALID'
    ELSE 'ALTER TABLE nn_user_not_valid ADD CONSTRAINT user_given CHECK (status IS NOT NULL) NOT VALID' END;
END $$;
CALL safe_set_not_null('nn_user_not_valid', 'status');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM nn_state WHERE relname = 'nn_user_not_valid';
\set VERBOSITY terse
CALL safe_backfill('nn_user_not_valid', 'status', 'filled', 30, set_not_null => true);
SELECT * FROM nn_state WHERE relname = 'nn_user_not_valid';
SELECT count(*) FILTER (WHERE status = 'filled') AS filled, count(status) AS non_null FROM nn_user_not_valid;

-- PostgreSQL 18 promotes a column through a NOT NULL constraint, earlier
-- versions through a CHECK: the expected files differ by the path, and this
-- line pins each file to its own (a fallback to the other path fails).
SELECT current_setting('server_version_num')::int >= 180000 AS native_not_null;
-- A cancel (or statement_timeout) during safe_set_not_null's VALIDATE leaves
-- the NOT VALID constraint it added on the table: the error says so, what
-- it costs, and how to finish or remove it.  The cancel is made to arrive
-- inside VALIDATE, and nowhere else: an event trigger at the start of the
-- ALTER TABLE that validates (the helper constraint exists, NOT VALID)
-- cancels its own backend.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS safe_backfill;

CREATE TABLE "Cancel Me" (id int PRIMARY KEY, "Status" text);
INSERT INTO "Cancel Me" SELECT g, 'x' FROM generate_series(1, 100) g;

CREATE FUNCTION cancel_validate() RETURNS event_trigger LANGUAGE plpgsql AS
$$BEGIN
  IF EXISTS (SELECT FROM pg_constraint
             WHERE conrelid = '"Cancel Me"'::regclass AND NOT convalidated) THEN
    PERFORM pg_cancel_backend(pg_backend_pid());
  END IF;
END$$;
CREATE EVENT TRIGGER cancel_validate ON ddl_command_start WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION cancel_validate();

CALL safe_set_not_null('"Cancel Me"', 'Status');

-- the constraint is there, NOT VALID; the column is not NOT NULL yet
SELECT conname, convalidated,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = '"Cancel Me"'::regclass AND attname = 'Status') AS not_null
FROM pg_constraint WHERE conrelid = '"Cancel Me"'::regclass AND contype IN ('c', 'n')
  AND conkey = (SELECT ARRAY[attnum] FROM pg_attribute WHERE attrelid = '"Cancel Me"'::regclass AND attname = 'Status');

-- and the hint's way to finish works
DROP EVENT TRIGGER cancel_validate;
CALL safe_set_not_null('public."Cancel Me"', 'Status', drop_check => true);
SELECT count(*) AS checks_left,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = '"Cancel Me"'::regclass AND attname = 'Status') AS not_null
FROM pg_constraint WHERE conrelid = '"Cancel Me"'::regclass AND contype = 'c';

-- the user's own NOT VALID CHECK, which the call validates: left as it was,
-- and the hint does not offer to drop it
CREATE TABLE cancel_mine (id int PRIMARY KEY, status text);
INSERT INTO cancel_mine SELECT g, 'x' FROM generate_series(1, 100) g;
-- (from 18 on the call validates the column's NOT NULL constraint instead,
-- which can be NOT VALID there)
DO $$BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE 'ALTER TABLE cancel_mine ADD CONSTRAINT status_given NOT NULL status NOT VALID';
  ELSE
    EXECUTE 'ALTER TABLE cancel_mine ADD CONSTRAINT status_given CHECK (status IS NOT NULL) NOT VALID';
  END IF;
END$$;
CREATE OR REPLACE FUNCTION cancel_validate() RETURNS event_trigger LANGUAGE plpgsql AS
$$BEGIN
  PERFORM pg_cancel_backend(pg_backend_pid());
END$$;
CREATE EVENT TRIGGER cancel_validate ON ddl_command_start WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION cancel_validate();
CALL safe_set_not_null('cancel_mine', 'status');
DROP EVENT TRIGGER cancel_validate;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'cancel_mine'::regclass AND contype IN ('c', 'n')
  AND conkey = (SELECT ARRAY[attnum] FROM pg_attribute WHERE attrelid = 'cancel_mine'::regclass AND attname = 'status');

DROP FUNCTION cancel_validate();
DROP TABLE "Cancel Me", cancel_mine;

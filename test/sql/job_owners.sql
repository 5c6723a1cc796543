-- Jobs and their errors belong to the role that ran them: a call resumes
-- only a run of its own role, and safe_backfill_progress shows the error of
-- a run (a value or an expression run) only to members of its role.  An
-- error can carry row data its role may read and others may not (a value
-- the expression read, the row a trigger refused).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS safe_backfill;
RESET client_min_messages;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
\set VERBOSITY terse
CREATE ROLE regress_jo_a;
CREATE ROLE regress_jo_b;

-- PINs behind row-level security: B may read only the ones not secret
CREATE TABLE jo_pins (id int PRIMARY KEY, pin text);
INSERT INTO jo_pins VALUES (1, 'SECRET-PIN-4711'), (2, 'not-a-number');
ALTER TABLE jo_pins ENABLE ROW LEVEL SECURITY;
CREATE POLICY jo_pins_a ON jo_pins TO regress_jo_a USING (true);
CREATE POLICY jo_pins_b ON jo_pins TO regress_jo_b USING (pin NOT LIKE 'SECRET%');
GRANT SELECT ON jo_pins TO regress_jo_a, regress_jo_b;
CREATE TABLE jo_t (id int PRIMARY KEY, code int);
INSERT INTO jo_t SELECT generate_series(1, 2);
GRANT SELECT, UPDATE ON jo_t TO regress_jo_a, regress_jo_b;

-- B's run fails on the PIN it can read
SET ROLE regress_jo_b;
CALL safe_backfill('jo_t', 'code', batch_size => 1,
                   expression => '(SELECT p.pin::int FROM jo_pins p WHERE p.id = jo_t.id)');
RESET ROLE;
-- A calls with the same expression: a run of its own, not B's resumed
SET ROLE regress_jo_a;
CALL safe_backfill('jo_t', 'code', batch_size => 1,
                   expression => '(SELECT p.pin::int FROM jo_pins p WHERE p.id = jo_t.id)');
RESET ROLE;
SELECT username, state, error LIKE '%SECRET-PIN%' AS error_has_secret
FROM safe_backfill_jobs WHERE table_name = 'public.jo_t' ORDER BY id;
-- the attacker B reads every run on jo_t it can see: no secret
SET ROLE regress_jo_b;
SELECT username, state, error FROM safe_backfill_progress
WHERE table_name = 'public.jo_t' ORDER BY id;
SELECT count(*) AS leaks FROM safe_backfill_progress WHERE error LIKE '%SECRET-PIN%';
RESET ROLE;
-- A sees its own error
SET ROLE regress_jo_a;
SELECT count(*) AS own_errors FROM safe_backfill_progress
WHERE table_name = 'public.jo_t' AND username = 'regress_jo_a' AND error LIKE '%SECRET-PIN-4711%';
RESET ROLE;

-- A value run whose trigger refuses a row with what it read behind RLS
CREATE TABLE jo_ibans (id int PRIMARY KEY, iban text);
INSERT INTO jo_ibans VALUES (1, 'DE89370400440532013000');
ALTER TABLE jo_ibans ENABLE ROW LEVEL SECURITY;
CREATE POLICY jo_ibans_a ON jo_ibans TO regress_jo_a USING (true);
GRANT SELECT ON jo_ibans TO regress_jo_a, regress_jo_b;
CREATE TABLE jo_acc (id int PRIMARY KEY, status text);
INSERT INTO jo_acc SELECT generate_series(1, 3);
GRANT SELECT, UPDATE ON jo_acc TO regress_jo_a, regress_jo_b;
CREATE FUNCTION jo_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE i text;
BEGIN
  SELECT iban INTO i FROM jo_ibans WHERE id = NEW.id;
  IF i IS NOT NULL THEN
    RAISE EXCEPTION 'account % is blocked', i;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER jo_check BEFORE UPDATE ON jo_acc FOR EACH ROW EXECUTE FUNCTION jo_check();
SET ROLE regress_jo_a;
CALL safe_backfill('jo_acc', 'status', 'checked'::text);
SELECT username, state, error FROM safe_backfill_progress WHERE table_name = 'public.jo_acc';
RESET ROLE;
-- B may read jo_acc, so it sees the run, but not its error
SET ROLE regress_jo_b;
SELECT username, state, error FROM safe_backfill_progress WHERE table_name = 'public.jo_acc';
SELECT count(*) AS leaks FROM safe_backfill_progress WHERE error LIKE '%DE89%';
-- nor does B's call with the same value resume A's run
RESET ROLE;
DROP TRIGGER jo_check ON jo_acc;
SET ROLE regress_jo_b;
CALL safe_backfill('jo_acc', 'status', 'checked'::text);
RESET ROLE;
SELECT username, state, rows_done FROM safe_backfill_jobs WHERE table_name = 'public.jo_acc' ORDER BY id;

DROP TABLE jo_t, jo_pins, jo_acc, jo_ibans;
DROP FUNCTION jo_check();
DELETE FROM safe_backfill_jobs WHERE table_name IN ('public.jo_t', 'public.jo_acc');
DROP ROLE regress_jo_a, regress_jo_b;

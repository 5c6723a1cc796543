-- The "safe_backfill: ... batch n, keys (...) after (...)" context of an
-- error in a batch is prepared before the batch runs, under the caller's
-- settings: the error context callback formats no key (no catalog lookup,
-- no output function) while the error is being reported.  A trigger that
-- runs with a DateStyle of its own (SET clause) and fails in the second
-- batch: the key in the context is in the caller's DateStyle (SQL, DMY),
-- as the batch saw it, not in the trigger's.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
SET safe_backfill.hot_rounds = 1;
SET DateStyle = 'SQL, DMY';

CREATE TABLE ctx_dated (d date, n int, status text, PRIMARY KEY (d, n));
INSERT INTO ctx_dated SELECT date '2024-02-01', g FROM generate_series(1, 300) g;
CREATE FUNCTION ctx_fail() RETURNS trigger LANGUAGE plpgsql
SET DateStyle = 'Postgres, MDY' AS
$$BEGIN
  IF NEW.n = 150 THEN
    RAISE EXCEPTION 'row % refused', NEW.n;
  END IF;
  RETURN NEW;
END$$;
CREATE TRIGGER ctx_fail BEFORE UPDATE ON ctx_dated FOR EACH ROW EXECUTE FUNCTION ctx_fail();

CALL safe_backfill('ctx_dated', 'status', 'x', 100);
SELECT count(status) AS filled FROM ctx_dated;

-- by block ranges
CREATE TABLE ctx_nokey (n int, status text);
INSERT INTO ctx_nokey SELECT g FROM generate_series(1, 10) g;
CREATE FUNCTION ctx_notice() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
  IF NEW.n = 5 THEN
    RAISE EXCEPTION 'row % refused', NEW.n;
  END IF;
  RETURN NEW;
END$$;
CREATE TRIGGER ctx_notice BEFORE UPDATE ON ctx_nokey FOR EACH ROW EXECUTE FUNCTION ctx_notice();
CALL safe_backfill('ctx_nokey', 'status', 'x', 100);

RESET DateStyle;
DROP TABLE ctx_dated, ctx_nokey;
DROP FUNCTION ctx_fail(), ctx_notice();

-- Batches commit with synchronous_commit = off unless
-- safe_backfill.synchronous_commit is on; the session's own setting is
-- untouched, so the call's last commit (the job's end) is as durable as the
-- session asks.  A trigger records the setting each batch's transaction
-- runs with.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET synchronous_commit = on;
CREATE TABLE cm (id int PRIMARY KEY, status text);
INSERT INTO cm SELECT generate_series(1, 500);
CREATE TABLE cm_seen (xid xid8, sync text);
CREATE FUNCTION cm_note() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
    INSERT INTO cm_seen VALUES (pg_current_xact_id(), current_setting('synchronous_commit'));
    RETURN NEW;
END$$;
CREATE TRIGGER cm_note BEFORE UPDATE ON cm FOR EACH ROW EXECUTE FUNCTION cm_note();
\set VERBOSITY terse
SET safe_backfill.progress_interval = 0;
CALL safe_backfill('cm', 'status', 'a', 100, target_batch_ms => 0);
SHOW safe_backfill.synchronous_commit;
-- every batch ran with it off, each of its HOT rounds (5 batches of 100 rows in
-- 8 rounds: 40 transactions); the session still has it on
SELECT count(DISTINCT xid) AS batches, string_agg(DISTINCT sync, ',') AS batch_setting FROM cm_seen;
SHOW synchronous_commit;
-- with safe_backfill.synchronous_commit = on, batches (and rounds) keep the session's setting
UPDATE cm SET status = NULL;
TRUNCATE cm_seen;
SET safe_backfill.synchronous_commit = on;
CALL safe_backfill('cm', 'status', 'b', 100, target_batch_ms => 0);
SELECT count(DISTINCT xid) AS batches, string_agg(DISTINCT sync, ',') AS batch_setting FROM cm_seen;
SELECT count(*) FILTER (WHERE status = 'b') AS filled FROM cm;
RESET safe_backfill.synchronous_commit;
RESET synchronous_commit;
DROP TABLE cm, cm_seen;
DROP FUNCTION cm_note();

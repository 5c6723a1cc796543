-- Settings: out-of-range and unknown safe_backfill.* values are refused.
-- Kept apart because PostgreSQL's own wording differs between versions
-- (expected/settings_1.out: 18 shows units in the range; settings_2.out: 14
-- cannot reserve the prefix, so an unknown name is accepted).
CREATE EXTENSION IF NOT EXISTS safe_backfill;
LOAD 'safe_backfill';
\set SHOW_CONTEXT never

SET safe_backfill.progress_interval = -1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.no_such_setting = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.target_batch_ms = -1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.batch_lock_timeout = -1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.max_batch_retries = -1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.iteration = 'sideways';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.lock_timeout = 0;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET safe_backfill.max_lock_attempts = 0;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- none of them changed anything
SELECT name, setting FROM pg_settings
WHERE name IN ('safe_backfill.progress_interval', 'safe_backfill.target_batch_ms',
               'safe_backfill.batch_lock_timeout', 'safe_backfill.max_batch_retries',
               'safe_backfill.iteration', 'safe_backfill.lock_timeout',
               'safe_backfill.max_lock_attempts')
ORDER BY name;
SHOW safe_backfill.no_such_setting;

/* safe_backfill--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION safe_backfill" to load this file. \quit

-- No SET clause and no SECURITY DEFINER: either would make every CALL atomic
-- and forbid the per-batch COMMIT this procedure exists for.
CREATE PROCEDURE safe_backfill(
    tbl        regclass,
    col        name,
    value      anycompatible,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    set_not_null boolean DEFAULT false,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill';

COMMENT ON PROCEDURE safe_backfill(regclass, name, anycompatible, integer, integer, boolean, integer, interval) IS
'Fill the NULLs of a column with a value, in batches that each commit';

-- drop_check: NULL drops the CHECK only if this call added it, true always,
-- false never.  lock_timeout and max_attempts default to the GUCs
-- safe_backfill.lock_timeout and safe_backfill.max_lock_attempts.
CREATE PROCEDURE safe_set_not_null(
    tbl          regclass,
    col          name,
    drop_check   boolean DEFAULT NULL,
    lock_timeout interval DEFAULT NULL,
    max_attempts integer DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_set_not_null';

COMMENT ON PROCEDURE safe_set_not_null(regclass, name, boolean, interval, integer) IS
'Make a column NOT NULL through a validated CHECK, without a table scan under ACCESS EXCLUSIVE';

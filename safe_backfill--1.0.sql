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
    pause_ms   integer DEFAULT 0)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill';

COMMENT ON PROCEDURE safe_backfill(regclass, name, anycompatible, integer, integer) IS
'Fill the NULLs of a column with a value, in batches that each commit';

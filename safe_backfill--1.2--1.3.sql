/* safe_backfill--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION safe_backfill UPDATE TO '1.3'" to load this file. \quit

-- ---------------------------------------------------------------------
-- 1.3: safe_update and safe_delete.  The same engine as safe_backfill
-- (batches by primary key, one commit each, lock bounds, progress, resume),
-- changing the rows that match a predicate instead of filling NULLs.
-- ---------------------------------------------------------------------

-- A run is a fill (safe_backfill), an update or a delete.  An update or a
-- delete has no column (attnum 0, column_name NULL), its set list and
-- predicate as the caller gave them (they are matched as text to resume),
-- and may be a dry run, which changes nothing and is never resumed.
ALTER TABLE safe_backfill_jobs
    ADD COLUMN operation text NOT NULL DEFAULT 'fill'
        CHECK (operation IN ('fill', 'update', 'delete')),
    ADD COLUMN set_list text,
    ADD COLUMN where_clause text,
    ADD COLUMN dry_run boolean NOT NULL DEFAULT false,
    ALTER COLUMN column_name DROP NOT NULL,
    DROP CONSTRAINT safe_backfill_jobs_check,
    ADD CONSTRAINT safe_backfill_jobs_check CHECK (
        CASE WHEN operation = 'fill'
             THEN (value_text IS NULL) <> (expression IS NULL)
                  AND column_name IS NOT NULL AND set_list IS NULL AND where_clause IS NULL
             ELSE value_text IS NULL AND expression IS NULL AND attnum = 0
                  AND (set_list IS NULL) = (operation = 'delete')
        END);

-- No SET clause and no SECURITY DEFINER: either would make every CALL atomic
-- and forbid the per-batch COMMIT these procedures exist for.
--
-- set: what follows SET in an UPDATE ('a = expr, b = expr'); "where": a
-- predicate on the row (NULL: every row).  Both are parsed and analysed
-- against the table, never pasted into a statement.
CREATE PROCEDURE safe_update(
    tbl        regclass,
    set        text,
    "where"    text DEFAULT NULL,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    workers integer DEFAULT 1,
    resume  boolean DEFAULT true,
    dry_run boolean DEFAULT false)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_update';

COMMENT ON PROCEDURE safe_update(regclass, text, text, integer, integer, integer, interval, integer, boolean, boolean) IS
'UPDATE the rows that match a predicate in committed batches, without blocking other sessions';

-- "where" is required: deleting every row is what TRUNCATE is for.
CREATE PROCEDURE safe_delete(
    tbl        regclass,
    "where"    text,
    batch_size integer DEFAULT 10000,
    pause_ms   integer DEFAULT 0,
    target_batch_ms integer DEFAULT NULL,
    max_replica_lag interval DEFAULT NULL,
    workers integer DEFAULT 1,
    resume  boolean DEFAULT true,
    dry_run boolean DEFAULT false)
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_delete';

COMMENT ON PROCEDURE safe_delete(regclass, text, integer, integer, integer, interval, integer, boolean, boolean) IS
'DELETE the rows that match a predicate in committed batches, without blocking other sessions';

-- The progress view says what each run does (operation, last).
CREATE OR REPLACE VIEW safe_backfill_progress WITH (security_barrier) AS
SELECT j.id,
       j.table_name,
       j.column_name,
       CASE WHEN j.state = 'running' AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = j.pid
                   AND ((l.classid = j.relid AND l.objid = j.attnum::pg_catalog.oid AND l.objsubid = 21314)
                        -- or, for a detached run, the lock its worker holds (objsubid 0x5345, keyed by the id)
                        OR (l.classid = (j.id >> 32)::pg_catalog.oid
                            AND l.objid = (j.id & 4294967295)::pg_catalog.oid AND l.objsubid = 21317)))
            THEN 'interrupted' ELSE j.state END AS state,
       j.phase,
       j.rows_done,
       j.rows_estimated,
       pg_catalog.round(100.0 * LEAST(j.rows_scanned, j.rows_estimated)
                        / NULLIF(j.rows_estimated, 0), 1) AS percent,
       pg_catalog.round(j.rows_done / NULLIF(EXTRACT(epoch FROM j.updated_at - j.started_at), 0)) AS rows_per_second,
       CASE WHEN j.state = 'running' AND j.rows_scanned > 0 AND j.rows_estimated > j.rows_scanned
            THEN (j.updated_at - j.started_at) * ((j.rows_estimated - j.rows_scanned)::float8 / j.rows_scanned) END AS eta,
       j.batches,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.pid,
       j.username,
       -- an error can carry what its run read (a value in the message of
       -- an expression's failed cast, the row a trigger refused) from
       -- tables, or rows behind row-level security, that a reader of the
       -- table filled may not read: only its caller's role sees it
       CASE WHEN EXISTS (
                 SELECT 1 FROM pg_catalog.pg_roles r
                 WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
            THEN j.error
            WHEN j.error IS NOT NULL
            THEN 'hidden: the error of a run is shown to members of role '
                 || pg_catalog.quote_ident(j.username) END AS error,
       EXISTS (SELECT 1 FROM safe_backfill_detached d WHERE d.job_id = j.id) AS detached,
       CASE WHEN j.dry_run THEN j.operation || ' (dry run)' ELSE j.operation END AS operation
FROM safe_backfill_jobs j
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
   OR pg_catalog.has_table_privilege(j.relid, 'SELECT');

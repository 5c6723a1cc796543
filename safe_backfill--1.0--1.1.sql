/* safe_backfill--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION safe_backfill UPDATE TO '1.1'" to load this file. \quit

-- The runs' records are no longer dumped with the extension: they are this
-- cluster's run state, keyed by table OIDs that a restore renumbers, and
-- hold values and errors private to their roles (a database owner who is not
-- a superuser could not dump the database).  Dropping a table or sequence
-- from the extension takes it out of its dumped configuration; adding it
-- back keeps it a member.
ALTER EXTENSION safe_backfill DROP TABLE safe_backfill_job_ranges;
ALTER EXTENSION safe_backfill ADD TABLE safe_backfill_job_ranges;
ALTER EXTENSION safe_backfill DROP TABLE safe_backfill_jobs;
ALTER EXTENSION safe_backfill ADD TABLE safe_backfill_jobs;
ALTER EXTENSION safe_backfill DROP SEQUENCE safe_backfill_jobs_id_seq;
ALTER EXTENSION safe_backfill ADD SEQUENCE safe_backfill_jobs_id_seq;

-- A range's counts, committed with each of its batches (the job row of a
-- parallel run is their sum), and a Citus shard's id in a column of its own.
ALTER TABLE safe_backfill_job_ranges
    ADD COLUMN rows_scanned bigint NOT NULL DEFAULT 0,
    ADD COLUMN batches    bigint NOT NULL DEFAULT 0,
    ADD COLUMN shard_id   bigint;
-- (a Citus run recorded by 1.0 kept the shard id in range_no, and shard_id
-- NULL: it is read as COALESCE(shard_id, range_no), so it still resumes)

-- Delete the records of the calling role's own finished runs (done or
-- failed; their ranges go with them): of table tbl only, or of every table
-- (NULL), that finished at least older_than ago.  Unfinished runs stay, to
-- be resumed.  Returns how many runs were deleted.  safe_backfill.job_retention
-- deletes every role's old records when a run starts.
CREATE FUNCTION safe_backfill_forget(
    tbl        regclass DEFAULT NULL,
    older_than interval DEFAULT '0 s')
RETURNS bigint
LANGUAGE C
AS 'MODULE_PATHNAME', 'safe_backfill_forget';

COMMENT ON FUNCTION safe_backfill_forget(regclass, interval) IS
'Delete the records of your own finished safe_backfill runs';

-- A run's error is shown only to members of its role, for value runs too.
CREATE OR REPLACE VIEW safe_backfill_progress WITH (security_barrier) AS
SELECT j.id,
       j.table_name,
       j.column_name,
       CASE WHEN j.state = 'running' AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = j.pid
                   AND l.classid = j.relid AND l.objid = j.attnum::pg_catalog.oid AND l.objsubid = 21314)
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
                 || pg_catalog.quote_ident(j.username) END AS error
FROM safe_backfill_jobs j
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.username AND pg_catalog.pg_has_role(r.oid, 'MEMBER'))
   OR pg_catalog.has_table_privilege(j.relid, 'SELECT');
GRANT SELECT ON safe_backfill_progress TO PUBLIC;

-- Identifiers are quoted everywhere, values are parameters, and operators
-- are schema-qualified, so no name, value or search_path changes the SQL.
CREATE EXTENSION IF NOT EXISTS safe_backfill;
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
-- one transaction per batch (no HOT rounds: see hot_rounds.sql)
SET safe_backfill.hot_rounds = 1;
\set VERBOSITY terse

CREATE SCHEMA "my schema";
CREATE TABLE "my schema"."Weird ""Name""" ("order" int PRIMARY KEY, "select" text);
INSERT INTO "my schema"."Weird ""Name""" ("order") SELECT generate_series(1, 300);
CALL safe_backfill('"my schema"."Weird ""Name"""', 'select', 'it''s; DROP TABLE x; --', 100);
SELECT "select", count(*) FROM "my schema"."Weird ""Name""" GROUP BY 1;

-- a column name that looks like SQL is just a name that does not exist
\set VERBOSITY default
CALL safe_backfill('"my schema"."Weird ""Name"""', 'select" = NULL; --', 'x');
\set VERBOSITY terse

-- a composite key with quoted names, no primary key with quoted names
CREATE TABLE "my schema"."Mixed Case" ("Tenant" int, "from" text, "Value" text, PRIMARY KEY ("Tenant", "from"));
INSERT INTO "my schema"."Mixed Case" SELECT g % 5, 'k' || g FROM generate_series(1, 200) g;
CALL safe_backfill('"my schema"."Mixed Case"', 'Value', 'v', 30);
SELECT count(*), count("Value") FROM "my schema"."Mixed Case";
CREATE TABLE "my schema"."no key" ("user" text, "group" text);
INSERT INTO "my schema"."no key" SELECT 'u' || g FROM generate_series(1, 200) g;
CALL safe_backfill('"my schema"."no key"', 'group', 'g', 30);
SELECT count(*), count("group") FROM "my schema"."no key";

-- a hostile search_path: a ">" for bigint that is always false, found first
CREATE TABLE plain_keys (id bigint PRIMARY KEY, v text);
INSERT INTO plain_keys SELECT generate_series(1, 300);
CREATE SCHEMA evil;
CREATE FUNCTION evil.never(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.never);
CREATE OPERATOR evil.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.never);
CREATE FUNCTION evil.never(tid, tid) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR evil.>= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = evil.never);
CREATE OPERATOR evil.< (LEFTARG = tid, RIGHTARG = tid, FUNCTION = evil.never);
SET search_path = evil, pg_catalog, public;
SELECT count(*) AS hijacked FROM plain_keys WHERE id > 0;
CALL safe_backfill('plain_keys', 'v', 'safe', 50);
RESET search_path;
SELECT count(*), count(v), count(DISTINCT xmin::text) AS batches FROM plain_keys;

-- the extension installed in its own schema works with that schema off the
-- path; in a database of its own, so this one keeps its extension (and the
-- runs other tests recorded in it)
\set quoting_db :DBNAME
CREATE DATABASE regress_quoting_tools;
\c regress_quoting_tools
SET safe_backfill.progress_interval = 0;
SET safe_backfill.target_batch_ms = 0;
SET safe_backfill.hot_rounds = 1;
CREATE SCHEMA tools;
CREATE EXTENSION safe_backfill SCHEMA tools;
CREATE TABLE elsewhere (id int PRIMARY KEY, v text);
INSERT INTO elsewhere SELECT generate_series(1, 100);
CALL tools.safe_backfill('elsewhere', 'v', 'x', 30);
SELECT count(v) FROM elsewhere;
\c :quoting_db
DROP DATABASE regress_quoting_tools;

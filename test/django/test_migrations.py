"""
End-to-end test of the Django migrations of this project against a real,
running PostgreSQL with the safe_backfill extension installed.  Started by
run_test.sh, which sets PGHOST/PGPORT/PGUSER/PGDATABASE and the batch size.

Prints TAP lines ("ok N - ...", "not ok N - ...") and a plan at the end.
Exit status: 0 all passed, 1 some failed, anything else: did not finish.
"""
import json
import os
import re
import subprocess
import sys
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
DB = os.environ["PGDATABASE"]
ROWS = int(os.environ.get("DJANGO_TEST_ROWS", "50000"))
BATCH = int(os.environ["SAFE_BACKFILL_BATCH_SIZE"])
OPS_ROWS = int(os.environ.get("DJANGO_TEST_OPS_ROWS", "10000"))
TMP = os.environ.get("DJANGO_TEST_TMP", "/tmp")
# A safety net for waits, not a pass/fail threshold.
WAIT_LIMIT_S = 120

# ---------------------------------------------------------------------------
# TAP

counter = 0
failures = 0


def diag(text):
    for line in str(text).rstrip("\n").splitlines():
        print("#   " + line)


def ok(condition, description, details=None):
    global counter, failures
    counter += 1
    if condition:
        print("ok %d - %s" % (counter, description))
    else:
        failures += 1
        print("not ok %d - %s" % (counter, description))
        if details:
            diag(details)
    sys.stdout.flush()
    return condition


def tail(text, lines=8):
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


# ---------------------------------------------------------------------------
# running Django

def django_env(extra=None):
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    for key in ("DEMOAPP_FORCE_ATOMIC", "OPSDEMO_FORCE_ATOMIC", "PGOPTIONS"):
        env.pop(key, None)
    env.update(extra or {})
    return env


def manage(*args, env=None):
    """Run manage.py; returns (exit code, stdout and stderr together)."""
    proc = subprocess.run(
        [PYTHON, os.path.join(HERE, "manage.py")] + list(args),
        cwd=HERE, env=django_env(env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, timeout=WAIT_LIMIT_S)
    return proc.returncode, proc.stdout


# Runs inside "manage.py shell -c": a migration that fails prints what failed.
MIGRATE_EXPECTING_ERROR = r'''
import sys
from django.core.management import call_command
from django.db import transaction
def find_pgcode(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "pgcode", None):
            return exc.pgcode
        exc = exc.__cause__ or exc.__context__
    return None
try:
    if {in_atomic}:
        with transaction.atomic():
            call_command("migrate", "{app}", "{target}", verbosity=1)
    else:
        call_command("migrate", "{app}", "{target}", verbosity=1)
    print("RESULT: migrated")
except Exception as exc:
    print("RESULT: failed")
    print("EXCEPTION:", type(exc).__name__)
    print("SQLSTATE:", find_pgcode(exc))
    print("MESSAGE:", exc)
'''


def migrate_expecting_error(app, target, env=None, in_atomic=False):
    code = MIGRATE_EXPECTING_ERROR.format(app=app, target=target, in_atomic=in_atomic)
    return manage("shell", "-c", code, env=env)


GET_LIST_LARGE = r'''
from django.test import Client
response = Client().get("/list_large/")
print("STATUS:", response.status_code)
print("BODY:", response.content.decode())
'''


def get_list_large(env=None):
    """GET /list_large/ through Django's test client; (status, json or None, output)."""
    rc, out = manage("shell", "-c", GET_LIST_LARGE, env=env)
    status = re.search(r"^STATUS: (\d+)", out, re.M)
    body = re.search(r"^BODY: (.*)$", out, re.M)
    try:
        data = json.loads(body.group(1)) if body else None
    except ValueError:
        data = None
    return (int(status.group(1)) if status else None), data, out


# ---------------------------------------------------------------------------
# looking at the database

def connect(dbname=DB, autocommit=True):
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = autocommit
    return conn


monitor = None


def q(sql, params=None):
    with monitor.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def q1(sql, params=None):
    rows = q(sql, params)
    return rows[0][0] if rows else None


def column_info(table, column):
    """(exists, attnotnull)"""
    rows = q("SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass(%s) "
             "AND attname = %s AND NOT attisdropped AND attnum > 0",
             ['"%s"' % table, column])
    return (bool(rows), bool(rows and rows[0][0]))


def check_constraints(table):
    return q("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
             "WHERE conrelid = to_regclass(%s) AND contype = 'c'", ['"%s"' % table])


def applied(app):
    return [r[0] for r in q("SELECT name FROM django_migrations WHERE app = %s ORDER BY name", [app])]


def null_count(table, column):
    return q1('SELECT count(*) FROM "%s" WHERE "%s" IS NULL' % (table, column))


def proc_exists(name):
    return q1("SELECT count(*) FROM pg_proc WHERE proname = %s", [name]) > 0


# ---------------------------------------------------------------------------
# the test

def setup_database():
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % DB)
        cur.execute('CREATE DATABASE "%s"' % DB)
    admin.close()
    global monitor
    monitor = connect()
    q("CREATE EXTENSION safe_backfill")
    ok(q1("SELECT extversion FROM pg_extension WHERE extname = 'safe_backfill'") is not None,
       "created database %s with the safe_backfill extension" % DB)
    if not proc_exists("safe_set_not_null"):
        diag("safe_set_not_null() is not in the installed extension yet: "
             "the NOT NULL steps (demoapp 0004, opsdemo 0004) cannot pass")


def test_demoapp_setup():
    rc, out = manage("migrate", "demoapp", "0001")
    ok(rc == 0, "demoapp: migrate to 0001_initial", tail(out))
    rc, out = manage("seed_large_table", "--large-count", str(ROWS))
    counts = (q1("SELECT count(*) FROM small_user"), q1("SELECT count(*) FROM large_user"))
    ok(rc == 0 and counts == (10, ROWS),
       "demoapp: seed_large_table inserted 10 small and %d large users" % ROWS,
       "counts %r\n%s" % (counts, tail(out)))
    rc, out = manage("migrate", "demoapp", "0002")
    exists, notnull = column_info("large_user", "status")
    ok(rc == 0 and exists and not notnull and null_count("large_user", "status") == ROWS,
       "demoapp: 0002 added status, nullable, NULL in every row", tail(out))


def test_demoapp_atomic_refused():
    rc, out = migrate_expecting_error("demoapp", "0003", env={"DEMOAPP_FORCE_ATOMIC": "1"})
    ok("RESULT: failed" in out and "SQLSTATE: 2D000" in out,
       "demoapp: 0003 made atomic fails with SQLSTATE 2D000", tail(out))
    ok("atomic = False" in out and "cannot run inside a transaction block" in out,
       "demoapp: the error says to set atomic = False", tail(out))
    untouched = (q1("SELECT count(status) FROM large_user"), q1("SELECT count(status) FROM small_user"))
    ok(untouched == (0, 0) and "0003_backfill_status_field" not in applied("demoapp"),
       "demoapp: the failed atomic 0003 changed no row and was not recorded",
       "non-NULL counts %r, applied %r" % (untouched, applied("demoapp")))


def test_demoapp_backfill_under_traffic():
    """
    Run 0003 in a subprocess while a row lock, taken before it started,
    stops it in the middle of large_user: then, with the migration provably
    running, other sessions read and write the table under lock_timeout 2s.
    """
    ids = [r[0] for r in q("SELECT id FROM large_user ORDER BY id")]
    held_id = ids[len(ids) * 3 // 5]
    early_ids, late_ids = ids[:3], ids[-3:]

    blocker = connect(autocommit=False)
    blocker_pid = blocker.get_backend_pid()
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM large_user WHERE id = %s FOR NO KEY UPDATE", [held_id])

    log_path = os.path.join(TMP, "migrate_0003.log")
    log = open(log_path, "w+")
    proc = subprocess.Popen([PYTHON, os.path.join(HERE, "manage.py"), "migrate", "demoapp", "0003"],
                            cwd=HERE, env=django_env(), stdout=log, stderr=subprocess.STDOUT)
    observer = connect()
    try:
        # Wait until the CALL on large_user is waiting for our row lock.
        waiting_pid = None
        deadline = time.monotonic() + WAIT_LIMIT_S
        while time.monotonic() < deadline and proc.poll() is None:
            waiting_pid = q1("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                             "AND %s = ANY(pg_blocking_pids(pid)) AND query LIKE %s",
                             [blocker_pid, "%safe_backfill(%large_user%"])
            if waiting_pid:
                break
            time.sleep(0.05)
        ok(waiting_pid is not None,
           "demoapp: 0003 is running and reached the row locked at id %d" % held_id,
           "migrate exited with %r" % proc.poll())

        with observer.cursor() as cur:
            cur.execute("SET lock_timeout = '2s'")
        if waiting_pid:
            filled = q1("SELECT count(status) FROM large_user")
            ok(0 < filled < ROWS,
               "demoapp: batches before the locked row are committed and visible "
               "(%d of %d rows filled)" % (filled, ROWS))
            modes = sorted(r[0] for r in q(
                "SELECT mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' "
                "AND relation = 'large_user'::regclass",
                [waiting_pid]))
            ok(set(modes) <= {"AccessShareLock", "RowShareLock", "RowExclusiveLock"},
               "demoapp: the running backfill holds no lock on large_user that blocks "
               "readers or writers (%s)" % ", ".join(modes))

            errors = []
            for round_no in range(3):
                try:
                    with observer.cursor() as cur:
                        cur.execute("UPDATE large_user SET name = name || '.' WHERE id = %s",
                                    [early_ids[round_no]])
                        assert cur.rowcount == 1
                        cur.execute("UPDATE large_user SET name = name || '.' WHERE id = %s",
                                    [late_ids[round_no]])
                        assert cur.rowcount == 1
                        cur.execute("INSERT INTO large_user (name) VALUES (%s)",
                                    ["inserted during 0003, round %d" % round_no])
                        cur.execute("SELECT id, name, status FROM large_user ORDER BY id LIMIT 20")
                        assert len(cur.fetchall()) == 20
                        cur.execute("SELECT count(*) FROM large_user")
                except Exception as exc:  # lock timeout, assertion
                    errors.append("round %d: %r" % (round_no, exc))
            ok(not errors,
               "demoapp: during 0003 another session updated rows before and after the "
               "batch in progress, inserted and read, 3 times, each under lock_timeout 2s",
               "\n".join(errors))

            status, data, out = get_list_large(env={"PGOPTIONS": "-c lock_timeout=2s"})
            ok(status == 200 and data and len(data["users"]) == 20,
               "demoapp: GET /list_large/ answers while 0003 runs", tail(out))
            ok(proc.poll() is None, "demoapp: 0003 was still running during all of that")
    finally:
        blocker.rollback()
        blocker.close()
        try:
            proc.wait(timeout=WAIT_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        observer.close()
    log.seek(0)
    out = log.read()
    log.close()
    ok(proc.returncode == 0 and "Applying demoapp.0003_backfill_status_field... OK" in out,
       "demoapp: migrate 0003 finished once the row lock was released", tail(out))


def test_demoapp_after_backfill():
    nulls = (null_count("large_user", "status"), null_count("small_user", "status"))
    total = q1("SELECT count(*) FROM large_user")
    ok(nulls == (0, 0) and total == ROWS + 3,
       "demoapp: after 0003 no NULL status is left, rows inserted during it included",
       "NULLs %r, rows %d" % (nulls, total))
    transactions = q1("SELECT count(DISTINCT xmin::text) FROM large_user")
    ok(transactions >= ROWS // BATCH,
       "demoapp: large_user was filled in %d transactions (>= %d rows / %d per batch)"
       % (transactions, ROWS, BATCH))


def test_demoapp_not_null():
    rc, out = manage("sqlmigrate", "demoapp", "0004")
    ok(rc == 0 and "safe_set_not_null" in out and "SET NOT NULL" not in out,
       "demoapp: 0004's SQL is CALL safe_set_not_null, no plain SET NOT NULL", tail(out))
    rc, out = manage("migrate", "demoapp", "0004")
    ok(rc == 0, "demoapp: migrate 0004 (safe_set_not_null) succeeded", tail(out))
    flags = (column_info("large_user", "status")[1], column_info("small_user", "status")[1])
    ok(flags == (True, True), "demoapp: status is NOT NULL in pg_attribute on both tables",
       "attnotnull (large, small) = %r" % (flags,))
    checks = check_constraints("large_user") + check_constraints("small_user")
    ok(not checks, "demoapp: no helper CHECK constraint is left", repr(checks))


def test_demoapp_state():
    rc, out = manage("showmigrations", "demoapp")
    marks = re.findall(r"^ \[X\] (\S+)", out, re.M)
    ok(rc == 0 and len(marks) == 4 and "[ ]" not in out,
       "demoapp: showmigrations shows 0001 to 0004 applied", out)
    status, data, out = get_list_large()
    ok(status == 200 and data and len(data["users"]) == 20
       and all(u["status"] == "active" for u in data["users"])
       and [u["id"] for u in data["users"]] == sorted(u["id"] for u in data["users"]),
       "demoapp: GET /list_large/ returns the first 20 users by id, status active", tail(out))


def test_demoapp_rollback_and_replay():
    rc, out = manage("migrate", "demoapp", "0001")
    exists, _ = column_info("large_user", "status")
    ok(rc == 0 and not exists and q1("SELECT count(*) FROM large_user") == ROWS + 3,
       "demoapp: rolled back to 0001: status column gone, rows kept", tail(out))
    rc, out = manage("migrate", "demoapp")
    flags = (column_info("large_user", "status")[1], column_info("small_user", "status")[1])
    ok(rc == 0 and flags == (True, True) and null_count("large_user", "status") == 0
       and not check_constraints("large_user"),
       "demoapp: replayed 0002 to 0004: every row filled, status NOT NULL again",
       "attnotnull %r\n%s" % (flags, tail(out)))
    ok(len(applied("demoapp")) == 4, "demoapp: all four migrations recorded again",
       repr(applied("demoapp")))


def test_operations():
    table, column = "opsdemo_Account", "planCode"
    rc, out = manage("migrate", "opsdemo", "0002")
    q('INSERT INTO "opsdemo_Account" (name) SELECT \'account \' || g FROM generate_series(1, %s) g',
      [OPS_ROWS])
    q('ANALYZE "opsdemo_Account"')
    ok(rc == 0 and null_count(table, column) == OPS_ROWS,
       "opsdemo: 0002 added nullable plan (db_column planCode, table opsdemo_Account); "
       "%d rows seeded" % OPS_ROWS, tail(out))

    rc, out = migrate_expecting_error("opsdemo", "0003", env={"OPSDEMO_FORCE_ATOMIC": "1"})
    ok("EXCEPTION: AtomicMigrationError" in out and "atomic = False" in out
       and "SafeBackfill" in out,
       "opsdemo: SafeBackfill in an atomic migration refuses, saying to set atomic = False",
       tail(out))
    ok(null_count(table, column) == OPS_ROWS and "0003_backfill_account_plan" not in applied("opsdemo"),
       "opsdemo: the refused SafeBackfill changed nothing and was not recorded")

    rc, out = migrate_expecting_error("opsdemo", "0003", in_atomic=True)
    ok("EXCEPTION: AtomicMigrationError" in out and "transaction.atomic()" in out
       and null_count(table, column) == OPS_ROWS,
       "opsdemo: SafeBackfill inside transaction.atomic() refuses and changes nothing", tail(out))

    rc, out = manage("sqlmigrate", "opsdemo", "0003")
    ok(rc == 0 and "CALL safe_backfill(tbl => '\"opsdemo_Account\"'::regclass, col => 'planCode'::name, "
       "value => 'free', batch_size => %d" % BATCH in out,
       "opsdemo: sqlmigrate shows SafeBackfill's CALL with names from the model state", tail(out))

    # Progress lines after every batch, to see them reach the migration's output.
    rc, out = manage("migrate", "opsdemo", "0003",
                     env={"PGOPTIONS": "-c safe_backfill.progress_interval=1"})
    ok(rc == 0 and null_count(table, column) == 0,
       "opsdemo: SafeBackfill filled every row", tail(out))
    summary = re.search(r"Applying opsdemo\.0003_backfill_account_plan\.\.\.\s*\n"
                        r"(?:.*\n)*?\s+NOTICE:\s+safe_backfill: \"opsdemo_Account\"\.\"planCode\": "
                        r"filled %d rows\n(?:.*\n)*? OK" % OPS_ROWS, out)
    progress = re.findall(r"^\s+NOTICE:\s+safe_backfill: .*: batch \d+", out, re.M)
    ok(summary is not None and len(progress) >= 2,
       "opsdemo: the extension's progress NOTICEs and summary appear in the migrate output "
       "(%d progress lines)" % len(progress), tail(out, 40))
    transactions = q1('SELECT count(DISTINCT xmin::text) FROM "opsdemo_Account"')
    ok(transactions >= OPS_ROWS // BATCH,
       "opsdemo: filled in %d transactions" % transactions)

    rc, out = migrate_expecting_error("opsdemo", "0004", env={"OPSDEMO_FORCE_ATOMIC": "1"})
    ok("EXCEPTION: AtomicMigrationError" in out and "SafeSetNotNull" in out
       and "atomic = False" in out and not column_info(table, column)[1],
       "opsdemo: SafeSetNotNull in an atomic migration refuses and changes nothing", tail(out))

    rc, out = manage("sqlmigrate", "opsdemo", "0004")
    ok(rc == 0 and "CALL safe_set_not_null(tbl => '\"opsdemo_Account\"'::regclass, "
       "col => 'planCode'::name)" in out and "SET NOT NULL" not in out,
       "opsdemo: sqlmigrate shows SafeSetNotNull's CALL", tail(out))
    rc, out = manage("migrate", "opsdemo", "0004")
    ok(rc == 0 and column_info(table, column)[1] and not check_constraints(table),
       "opsdemo: SafeSetNotNull made planCode NOT NULL, no helper CHECK left", tail(out))

    rc, out = manage("migrate", "opsdemo", "0002")
    ok(rc == 0 and not column_info(table, column)[1] and null_count(table, column) == 0,
       "opsdemo: reversed to 0002: DROP NOT NULL, the backfilled values stay", tail(out))
    rc, out = manage("migrate", "opsdemo", "0004")
    ok(rc == 0 and column_info(table, column)[1] and len(applied("opsdemo")) == 4,
       "opsdemo: replayed 0003 and 0004", tail(out))


def test_backfill_with_set_not_null():
    table, column = "opsdemo_tag", "color"
    rows = max(OPS_ROWS // 2, 1)
    rc, out = manage("migrate", "opsdemo", "0005")
    q("INSERT INTO opsdemo_tag (name) SELECT 'tag ' || g FROM generate_series(1, %s) g", [rows])
    ok(rc == 0 and null_count(table, column) == rows,
       "opsdemo: 0005 created opsdemo_tag with a nullable color; %d rows seeded" % rows, tail(out))

    rc, out = migrate_expecting_error("opsdemo", "0006", env={"OPSDEMO_FORCE_ATOMIC": "1"})
    ok("EXCEPTION: AtomicMigrationError" in out and "atomic = False" in out
       and null_count(table, column) == rows,
       "opsdemo: SafeBackfill(set_not_null=True) in an atomic migration refuses, changes nothing",
       tail(out))

    rc, out = manage("sqlmigrate", "opsdemo", "0006")
    ok(rc == 0 and "set_not_null => true" in out and "SET NOT NULL" not in out,
       "opsdemo: sqlmigrate shows CALL safe_backfill(..., set_not_null => true)", tail(out))
    rc, out = manage("migrate", "opsdemo", "0006")
    ok(rc == 0 and null_count(table, column) == 0 and column_info(table, column)[1]
       and not check_constraints(table),
       "opsdemo: SafeBackfill(set_not_null=True) filled every row and made color NOT NULL, "
       "no helper CHECK left", tail(out, 15))
    ok(re.search(r"NOTICE:\s+safe_backfill: opsdemo_tag\.color: filled %d rows" % rows, out)
       and "safe_set_not_null" in out,
       "opsdemo: both the backfill's and the NOT NULL step's NOTICEs reach the migrate output",
       tail(out, 15))

    rc, out = manage("migrate", "opsdemo", "0005")
    ok(rc == 0 and not column_info(table, column)[1] and null_count(table, column) == 0,
       "opsdemo: reversing 0006 runs DROP NOT NULL and keeps the values", tail(out))
    rc, out = manage("migrate", "opsdemo", "0006")
    ok(rc == 0 and column_info(table, column)[1] and len(applied("opsdemo")) == 6,
       "opsdemo: replayed 0006", tail(out))


# ---------------------------------------------------------------------------
# SafeBackfill(expression=...)

PERSON = "opsdemo_Person"
# What a plain UPDATE gives, written by hand (not by Django's compiler): the
# backfilled table must equal a copy updated with these.
PERSON_EXPECTED_UPDATES = [
    "UPDATE person_expected SET email_lower = lower(\"eMail\") WHERE email_lower IS NULL",
    "UPDATE person_expected SET display_name = upper(last_name) || ', ' || first_name "
    "|| ' (it''s 100%)' WHERE display_name IS NULL",
]

# expression_cases.py case -> (SQL text Django 3.2 compiles it to, or None;
# hand-written SQL that must give the same value in every row).
COMPILED_CASES = {
    "lower": ('LOWER("opsdemo_Person"."eMail")', 'lower("eMail")'),
    "concat": (None, "concat(first_name, ' ', last_name)"),
    "case_when": (None, "CASE WHEN vip THEN 'pro' ELSE 'free' END"),
    "cast": (None, "id::text"),
    "f": ('"opsdemo_Person"."first_name"', "first_name"),
    "foreign_key_column": ('"opsdemo_Person"."account_id"', "account_id"),
    "value_with_quote": ("'O''Brien''); DROP TABLE x; --'", "'O''Brien''); DROP TABLE x; --'::text"),
    "arithmetic_with_percent": (None, "(id % 7) * 2 + 1"),
    "rawsql_params": ("(upper(last_name) || '''s 100% ' || 7)",
                      "upper(last_name) || '''s 100% ' || '7'"),
    "rawsql_percent_no_params": ("(first_name || '%')", "first_name || '%'"),
}
# Compiled only (the model is never migrated): case -> SQL text.
COMPILED_ONLY_CASES = {
    "own_field_of_child_model": 'LOWER("opsdemo_customer"."nickname")',
}

# case -> words the refusal must contain (an UnsupportedExpressionError
# unless given as (error class, words)).
REFUSED_CASES = {
    "join": ["Lower(F(account__name))", "Joined field references are not permitted",
             "opsdemo_Person", "RawSQL"],
    "join_in_when": ["Joined field references are not permitted"],
    "parent_model_field": ["Joined field references are not permitted", "opsdemo_customer"],
    "unknown_field": ["Cannot resolve keyword 'no_such_field'"],
    "aggregate": ["Sum(F(id)) is an aggregate", "that row alone"],
    "nested_aggregate": ["contains an aggregate, Max(F(email))"],
    "window": ["is a window expression", "that row alone"],
    "subquery": ["is a subquery", "only the model's own columns", "RawSQL"],
    "plain_string": ["is a string", "RawSQL('lower(email)', [])"],
    "unquotable_param": ["cannot write the parameters", "can't adapt type 'object'"],
    "value_and_expression": ("ValueError", ["exactly one of value= and expression="]),
    "neither_value_nor_expression": ("ValueError", ["needs value=", "or expression="]),
}

skipped = []


def skip(description, reason):
    """Reported as skipped: no "ok" line, so it is never counted as passed."""
    skipped.append(description)
    print("# SKIPPED - %s: %s" % (description, reason))
    sys.stdout.flush()


def expression_support():
    """None if the installed safe_backfill takes expression =>, else why not."""
    names = q1("SELECT proargnames FROM pg_proc WHERE proname = 'safe_backfill' "
               "AND pronamespace = (SELECT extnamespace FROM pg_extension "
               "WHERE extname = 'safe_backfill')")
    if names and "expression" in names:
        return None
    return ("the installed safe_backfill procedure has no expression argument "
            "(the extension side of issue 16, branch expr, is not merged)")


def seed_person(rows):
    """Mixed-case e-mails, some with a quote, names with non-ASCII letters;
    last_name NULL in every 10th row (display_name's expression gives NULL)."""
    q('INSERT INTO "opsdemo_Person" (first_name, last_name, "eMail", vip) '
      "SELECT 'First' || g, CASE WHEN g %% 10 = 0 THEN NULL "
      "WHEN g %% 10 = 3 THEN 'O''Neill' ELSE 'Zoë' || g END, "
      "CASE WHEN g %% 7 = 0 THEN 'o''Brien.' || g || '@Example.COM' "
      "ELSE 'User.' || g || '@Example.COM' END, g %% 2 = 0 "
      "FROM generate_series(1, %s) g", [rows])
    q('ANALYZE "opsdemo_Person"')
    q("DROP TABLE IF EXISTS person_expected")
    q('CREATE TABLE person_expected AS SELECT * FROM "opsdemo_Person"')
    for update in PERSON_EXPECTED_UPDATES:
        q(update)


def person_differences():
    """Rows of opsdemo_Person that differ from the plainly UPDATEd copy."""
    return q1('SELECT count(*) FROM "opsdemo_Person" p FULL JOIN person_expected e USING (id) '
              "WHERE p.id IS NULL OR e.id IS NULL "
              "OR p.email_lower IS DISTINCT FROM e.email_lower "
              "OR p.display_name IS DISTINCT FROM e.display_name")


def run_expression_cases():
    """expression_cases.py's results: {case: {"sql": ...} or {"error": ..., "message": ...}}."""
    proc = subprocess.run([PYTHON, os.path.join(HERE, "expression_cases.py")], cwd=HERE,
                          env=django_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=WAIT_LIMIT_S)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result.pop("case")] = result
    ok(proc.returncode == 0 and results,
       "expression: expression_cases.py compiled %d cases" % len(results), tail(proc.stdout))
    return results


def test_expression_compilation(results):
    """
    The SQL text SafeBackfill sends for each expression: columns qualified
    with the table's name, parameters quoted by psycopg2, and (evaluated on
    the seeded table) the same value in every row as hand-written SQL.
    """
    for case, (text, equivalent) in COMPILED_CASES.items():
        result = results.get(case, {})
        sql = result.get("sql")
        if sql is None:
            ok(False, "expression %s: compiles" % case, repr(result))
            continue
        if text is not None:
            ok(sql == text, "expression %s: compiles to %s" % (case, text), "got %s" % sql)
        differing = None
        try:
            differing = q1('SELECT count(*) FROM "opsdemo_Person" WHERE (%s) IS DISTINCT FROM (%s)'
                           % (sql, equivalent))
        except psycopg2.Error as exc:
            diag("%s: %s" % (case, exc))
        ok(differing == 0, "expression %s: %s gives the same as %s in every row"
           % (case, sql, equivalent), "%r rows differ" % (differing,))

    for case, text in COMPILED_ONLY_CASES.items():
        result = results.get(case, {})
        ok(result.get("sql") == text, "expression %s: compiles to %s" % (case, text), repr(result))

    for case, expected in REFUSED_CASES.items():
        error, words = expected if isinstance(expected, tuple) else ("UnsupportedExpressionError", expected)
        result = results.get(case, {})
        message = result.get("message", "")
        ok(result.get("error") == error and all(w in message for w in words),
           "expression %s: refused with %s saying %s" % (case, error, " / ".join(words)),
           repr(result))

    ok(results.get("references_field", {}).get("sql") ==
       '{"lower_other_model": false, "lower_reads_email": true, '
       '"lower_reads_first_name": false, "raw_reads_first_name": true}',
       "expression: references_field names the fields an expression reads "
       "(any field for RawSQL)", repr(results.get("references_field")))
    refused = results.get("refused_when_running", {}).get("sql", "")
    ok(refused.startswith("UnsupportedExpressionError") and refused.endswith("statements sent: 0"),
       "expression: a related lookup found when the operation runs is refused before "
       "any statement is sent", refused)


# Runs inside "manage.py shell -c": SafeBackfill(expression=RawSQL(text)) on
# opsdemo_Person, one line per text with the SQLSTATE it failed with.
RAW_EXPRESSIONS_EXPECTING_ERROR = r'''
import json
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models.expressions import RawSQL
from safe_backfill_ops import SafeBackfill
state = MigrationLoader(connection).project_state(("opsdemo", "0007_person"))
for text in json.loads({texts!r}):
    op = SafeBackfill("person", "display_name", expression=RawSQL(text, []))
    try:
        with connection.schema_editor(atomic=False) as editor:
            op.database_forwards("opsdemo", editor, state, state)
        print("RESULT:", json.dumps([text, "ran", ""]))
    except Exception as exc:
        print("RESULT:", json.dumps([text, getattr(exc.__cause__, "pgcode", None), str(exc)]))
'''

# RawSQL text the Django side cannot judge: the extension refuses it before
# any row changes, and the error reaches the migration.  text -> SQLSTATE.
SERVER_REFUSED_RAW = {
    "1); DROP TABLE person_expected; --": "42601",
    "count(*)": "42803",
    "lower(no_such_column)": "42703",
    "generate_series(1, 2)::text": "0A000",
}


def test_server_refusals(rows):
    rc, out = manage("shell", "-c", RAW_EXPRESSIONS_EXPECTING_ERROR.format(
        texts=json.dumps(list(SERVER_REFUSED_RAW))))
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT: "):
            text, pgcode, message = json.loads(line[len("RESULT: "):])
            results[text] = (pgcode, message)
    for text, sqlstate in SERVER_REFUSED_RAW.items():
        pgcode, message = results.get(text, (None, ""))
        ok(pgcode == sqlstate and "expression" in message,
           "opsdemo: RawSQL(%r) is refused by the extension with SQLSTATE %s, "
           "the error reaching the migration" % (text, sqlstate),
           "%r\n%s" % (results.get(text), tail(out)))
    ok(null_count(PERSON, "display_name") == rows
       and q1("SELECT to_regclass('person_expected') IS NOT NULL"),
       "opsdemo: after those refusals opsdemo_Person is unchanged and person_expected exists")


def test_expression_backfill():
    rows = max(OPS_ROWS // 2, 10)
    null_rows = rows // 10
    rc, out = manage("migrate", "opsdemo", "0007")
    seed_person(rows)
    ok(rc == 0 and null_count(PERSON, "email_lower") == rows
       and null_count(PERSON, "display_name") == rows,
       "opsdemo: 0007 created opsdemo_Person (email_lower, display_name NULL); "
       "%d rows seeded" % rows, tail(out))

    test_expression_compilation(run_expression_cases())

    rc, out = manage("sqlmigrate", "opsdemo", "0008")
    ok(rc == 0 and "CALL safe_backfill(tbl => '\"opsdemo_Person\"'::regclass, "
       "col => 'email_lower'::name, expression => 'LOWER(\"opsdemo_Person\".\"eMail\")', "
       "batch_size => %d, pause_ms => 0, set_not_null => true)" % BATCH in out
       and "col => 'display_name'::name, expression => '(upper(last_name) || '', '' "
       "|| first_name || '' (it''''s 100" in out and "value =>" not in out,
       "opsdemo: sqlmigrate shows SafeBackfill's CALLs with the compiled expressions "
       "as one quoted parameter each", tail(out))

    rc, out = migrate_expecting_error("opsdemo", "0008", env={"OPSDEMO_FORCE_ATOMIC": "1"})
    ok("EXCEPTION: AtomicMigrationError" in out and "atomic = False" in out
       and null_count(PERSON, "email_lower") == rows,
       "opsdemo: SafeBackfill(expression=...) in an atomic migration refuses, changes nothing",
       tail(out))

    why_not = expression_support()
    end_to_end = [
        "opsdemo: 0008 SafeBackfill(expression=Lower(...)) and (expression=RawSQL(...)) ran",
        "opsdemo: every row equals what a plain UPDATE gives",
        "opsdemo: email_lower became NOT NULL, display_name stayed NULL where the expression gave NULL",
        "opsdemo: the expression backfill committed in batches",
        "opsdemo: reversing 0008 runs DROP NOT NULL and keeps the values",
        "opsdemo: replaying 0008 leaves every row as a plain UPDATE gives",
    ]
    if why_not:
        for text, sqlstate in SERVER_REFUSED_RAW.items():
            skip("opsdemo: RawSQL(%r) is refused by the extension with SQLSTATE %s"
                 % (text, sqlstate), why_not)
        for description in end_to_end + ["opsdemo: the summary NOTICE counts the rows "
                                         "the expression gave NULL for"]:
            skip(description, why_not)
        return

    test_server_refusals(rows)

    rc, out = manage("migrate", "opsdemo", "0008",
                     env={"PGOPTIONS": "-c safe_backfill.progress_interval=1"})
    ok(rc == 0 and re.search(r"Applying opsdemo\.0008_backfill_person\.\.\.\s*\n"
                             r"(?:.*\n)*?\s+NOTICE:\s+safe_backfill: ", out) is not None
       and re.search(r"^ OK$", out, re.M) is not None,
       end_to_end[0] + ", the extension's NOTICEs in the migrate output", tail(out, 30))
    summary = re.search(r"NOTICE:\s+safe_backfill: \"opsdemo_Person\"\.display_name: "
                        r"filled %d rows\b.*\b%d rows\b.*NULL" % (rows - null_rows, null_rows), out)
    ok(summary is not None,
       "opsdemo: the summary NOTICE counts the %d rows the expression gave NULL for" % null_rows,
       "\n".join(l for l in out.splitlines() if "display_name" in l))
    differing = person_differences()
    ok(differing == 0, end_to_end[1] + " (%d rows)" % rows, "%r rows differ" % (differing,))
    ok(column_info(PERSON, "email_lower")[1] and not column_info(PERSON, "display_name")[1]
       and null_count(PERSON, "display_name") == null_rows and not check_constraints(PERSON),
       end_to_end[2] + " (%d rows)" % null_rows,
       "display_name NULLs: %r" % null_count(PERSON, "display_name"))
    transactions = q1('SELECT count(DISTINCT xmin::text) FROM "opsdemo_Person"')
    ok(transactions >= rows // BATCH, end_to_end[3] + " (%d transactions)" % transactions)

    rc, out = manage("migrate", "opsdemo", "0007")
    ok(rc == 0 and not column_info(PERSON, "email_lower")[1] and person_differences() == 0,
       end_to_end[4], tail(out))
    rc, out = manage("migrate", "opsdemo", "0008")
    ok(rc == 0 and column_info(PERSON, "email_lower")[1] and person_differences() == 0
       and len(applied("opsdemo")) == 8, end_to_end[5], tail(out))


TICKET = "opsdemo_ticket"


def test_detached_two_deploys():
    """SafeBackfill(detached=True) in an atomic migration, then
    EnsureBackfillFinished + SafeSetNotNull in a later one."""
    rc, out = manage("migrate", "opsdemo", "0009")
    ok(rc == 0, "opsdemo: migrate 0009 creates the ticket table", tail(out))
    q("INSERT INTO opsdemo_ticket (title) SELECT 'ticket ' || g FROM generate_series(1, %s) g",
      [OPS_ROWS])
    # counts every committed write of each row
    q("CREATE TABLE ticket_writes (id bigint PRIMARY KEY, n int NOT NULL)")
    q("CREATE FUNCTION ticket_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "INSERT INTO ticket_writes VALUES (NEW.id, 1) "
      "ON CONFLICT (id) DO UPDATE SET n = ticket_writes.n + 1; RETURN NEW; END $$")
    q("CREATE TRIGGER ticket_write BEFORE UPDATE ON opsdemo_ticket "
      "FOR EACH ROW EXECUTE FUNCTION ticket_write()")
    rc, out = manage("sqlmigrate", "opsdemo", "0010")
    ok(rc == 0 and "SELECT safe_backfill_start(tbl => '\"opsdemo_ticket\"'::regclass" in out,
       "opsdemo: sqlmigrate shows SafeBackfill(detached=True)'s safe_backfill_start", tail(out))
    rc, out = manage("migrate", "opsdemo", "0010")
    run = re.search(r"detached run (\d+) queued", out)
    ok(rc == 0 and run is not None,
       "opsdemo: migrate 0010 (an atomic migration) queues a detached run and returns", tail(out))
    ok(column_info(TICKET, "priority") == (True, False),
       "opsdemo: the column is still nullable after 0010")
    rc, out = manage("sqlmigrate", "opsdemo", "0011")
    ok(rc == 0 and "CALL safe_backfill_wait(" in out and "CALL safe_set_not_null(" in out,
       "opsdemo: sqlmigrate shows EnsureBackfillFinished's wait, then SafeSetNotNull", tail(out))
    rc, out = manage("migrate", "opsdemo", "0011")
    ok(rc == 0 and run is not None and ("run %s is done" % run.group(1)) in out,
       "opsdemo: migrate 0011 waits for the detached run to be done", tail(out, 20))
    ok(column_info(TICKET, "priority") == (True, True) and null_count(TICKET, "priority") == 0,
       "opsdemo: then the column is NOT NULL and every row filled")
    ok(q1("SELECT count(*) FROM ticket_writes WHERE n = 1") == OPS_ROWS
       and q1("SELECT count(*) FROM ticket_writes WHERE n <> 1") == 0,
       "opsdemo: every row was written exactly once by the detached run")


# ---------------------------------------------------------------------------
# SafeUpdate / SafeDelete (opsdemo 0012-0014)

ORDER = "opsdemo_Order"
# What plain statements give, written by hand (not by Django's compiler): the
# table after each migration must equal a copy changed with these.
ORDER_PLAIN_UPDATES = [
    # 0013's first SafeUpdate
    'UPDATE order_expected SET "curCode" = upper("curCode"), email = lower(email) '
    "WHERE \"curCode\" IN ('eur', 'usd') OR email <> lower(email)",
    # 0013's second
    "UPDATE order_expected SET price_cents = (price * 100)::int "
    "WHERE price_cents IS DISTINCT FROM (price * 100)::int",
]
ORDER_PLAIN_DELETE = ("DELETE FROM order_expected WHERE created_at < '2023-07-01 00:00+00' "
                      "AND \"curCode\" <> 'EUR'")

# update_cases.py case -> SQL text (Django 3.2's compiler, psycopg2's quoting)
SET_TEXTS = {
    "set_constant_db_column": "\"curCode\" = 'EUR'",
    "set_constant_quote": "\"email\" = 'o''brien@example.com'",
    "set_null": '"price_cents" = NULL',
    "set_decimal": '"price" = 1.50',
    "set_datetime": "\"created_at\" = '2024-01-02T03:04:05+00:00'::timestamptz",
    "set_upper_lower": '"curCode" = UPPER("opsdemo_Order"."curCode"), '
                       '"email" = LOWER("opsdemo_Order"."email")',
    "set_f_arithmetic": '"price_cents" = ("opsdemo_Order"."price_cents" + 1)',
    "set_case_when": "\"curCode\" = CASE WHEN \"opsdemo_Order\".\"curCode\" = 'eur' THEN 'EUR' "
                     "ELSE \"opsdemo_Order\".\"curCode\" END",
    "set_rawsql": "\"email\" = (lower(email) || '%''')",
}
# case -> (SQL text, hand-written SQL that must give the same in every row
# of the seeded table)
WHERE_TEXTS = {
    "where_in_or_negated": ('("opsdemo_Order"."curCode" IN (\'eur\', \'usd\') OR NOT '
                            '("opsdemo_Order"."email" = LOWER("opsdemo_Order"."email")))',
                            "\"curCode\" IN ('eur', 'usd') OR email <> lower(email)"),
    "where_date": ("\"opsdemo_Order\".\"created_at\" < '2023-07-01T00:00:00+00:00'::timestamptz",
                   "created_at < '2023-07-01 00:00+00'"),
    "where_negated_nullable": ('NOT ("opsdemo_Order"."price_cents" = 100 AND '
                               '"opsdemo_Order"."price_cents" IS NOT NULL)',
                               "price_cents IS DISTINCT FROM 100"),
    "where_isnull": ('"opsdemo_Order"."price_cents" IS NULL', "price_cents IS NULL"),
    "where_rawsql": ("(created_at < '2024-01-01 00:00+00'::timestamptz - '90 days'::interval)",
                     "created_at < '2023-10-03 00:00+00'"),
    "where_expression_wrapper": ('"opsdemo_Order"."price" > "opsdemo_Order"."price_cents"',
                                 "price > price_cents"),
    "where_value_with_quote": ("\"opsdemo_Order\".\"email\" = 'o''brien''); DROP TABLE x; --'",
                               "email = 'o''brien''); DROP TABLE x; --'"),
    "delete_where_date": ("(\"opsdemo_Order\".\"created_at\" < '2023-07-01T00:00:00+00:00'::timestamptz "
                          "AND NOT (\"opsdemo_Order\".\"curCode\" = 'EUR'))",
                          "created_at < '2023-07-01 00:00+00' AND \"curCode\" <> 'EUR'"),
}
# case -> (error class, words its message must contain)
UPDATE_REFUSED = {
    "set_primary_key": ("UnsupportedExpressionError", ["set['id']", "primary key"]),
    "set_unknown_field": ("UnsupportedExpressionError", ["has no field 'no_such_field'"]),
    "set_aggregate": ("UnsupportedExpressionError", ["Sum(F(price_cents)) is an aggregate"]),
    "set_join": ("UnsupportedExpressionError", ["Lower(F(account__name))",
                                                "Joined field references are not permitted"]),
    "set_q": ("UnsupportedExpressionError", ["is not a Django expression", "ExpressionWrapper"]),
    "set_empty": ("ValueError", ["at least one field"]),
    "set_parent_model_field": ("UnsupportedExpressionError", ["parent model opsdemo.Person"]),
    "set_reverse_relation": ("UnsupportedExpressionError", ["not a column", "reverse relation"]),
    "where_string": ("UnsupportedExpressionError", ["is a string", "RawSQL(\"currency = 'eur'\", [])"]),
    "where_aggregate": ("UnsupportedExpressionError", ["contains an aggregate, Max(F(price))"]),
    "where_subquery": ("UnsupportedExpressionError", ["contains a subquery", "RawSQL"]),
    "where_join": ("UnsupportedExpressionError", ["Q(account__name='x')",
                                                  "Joined field references are not permitted"]),
    "delete_without_where": ("ValueError", ["needs where=", "TRUNCATE"]),
    "delete_empty_q": ("ValueError", ["needs where=", "TRUNCATE"]),
}


def run_update_cases():
    """update_cases.py's results: {case: {"sql": ...} or {"error": ..., "message": ...}}."""
    proc = subprocess.run([PYTHON, os.path.join(HERE, "update_cases.py")], cwd=HERE,
                          env=django_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=WAIT_LIMIT_S)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result.pop("case")] = result
    ok(proc.returncode == 0 and results,
       "update: update_cases.py compiled %d cases" % len(results), tail(proc.stdout))
    return results


def test_update_compilation(results):
    """The SET and WHERE texts SafeUpdate/SafeDelete send, the refusals, and
    that a refusal or a where matching no row sends no statement."""
    for case, text in SET_TEXTS.items():
        ok(results.get(case, {}).get("sql") == text,
           "update %s: set compiles to %s" % (case, text), repr(results.get(case)))
    for case, (text, equivalent) in WHERE_TEXTS.items():
        sql = results.get(case, {}).get("sql")
        ok(sql == text, "update %s: where compiles to %s" % (case, text), repr(results.get(case)))
        differing = None
        if sql:
            try:
                differing = q1('SELECT count(*) FROM "opsdemo_Order" WHERE (%s) IS DISTINCT FROM (%s)'
                               % (sql, equivalent))
            except psycopg2.Error as exc:
                diag("%s: %s" % (case, exc))
        ok(differing == 0, "update %s: the where selects the same rows as %s" % (case, equivalent),
           "%r rows differ" % (differing,))
    ok(results.get("where_empty_q_update", {}).get("sql") is None
       and "error" not in results.get("where_empty_q_update", {}),
       "update: where=Q() compiles to no where (every row)", repr(results.get("where_empty_q_update")))
    for case, (error, words) in UPDATE_REFUSED.items():
        result = results.get(case, {})
        message = result.get("message", "")
        ok(result.get("error") == error and all(w in message for w in words),
           "update %s: refused with %s saying %s" % (case, error, " / ".join(words) or "-"),
           repr(result))
    ok(results.get("where_matches_nothing", {}).get("error") == "_NoRowMatches",
       "update: Q(id__in=[]) is known to match no row", repr(results.get("where_matches_nothing")))
    ok(results.get("references_field", {}).get("sql") ==
       '{"delete_noop_reversible": true, "delete_rawsql_any": true, "delete_reversible": false, '
       '"other_model": false, "update_email": false, "update_reads_price": true, '
       '"update_reversible": true, "update_where_reads_currency": true, '
       '"update_writes_price_cents": true}',
       "update: references_field names the fields set/where read and write; SafeDelete is "
       "reversible only with reverse_code", repr(results.get("references_field")))
    ok(results.get("options_passed", {}).get("sql") ==
       "CALL safe_update(tbl => '\"opsdemo_Order\"'::regclass, set => '\"curCode\" = ''EUR''', "
       "\"where\" => '\"opsdemo_Order\".\"curCode\" = ''eur''', batch_size => 500, pause_ms => 10, "
       "target_batch_ms => 200, max_replica_lag => '0 days 5.000000 seconds'::interval, "
       "workers => 2, resume => false, dry_run => true);",
       "update: target_batch_ms, max_replica_lag, workers, resume and dry_run reach the CALL "
       "when given", repr(results.get("options_passed")))
    ok(results.get("no_where_update", {}).get("sql") ==
       "CALL safe_update(tbl => '\"opsdemo_Order\"'::regclass, set => '\"price_cents\" = NULL', "
       "batch_size => 10000, pause_ms => 0);",
       "update: without where, no where argument is passed (every row)",
       repr(results.get("no_where_update")))
    for case, words in (("refused_when_running", ["UnsupportedExpressionError", "Joined field"]),
                        ("delete_every_row_when_running", ["UnsupportedExpressionError",
                                                           "matches every row", "TRUNCATE"]),
                        ("matches_nothing_sends_nothing", ["ran"])):
        text = results.get(case, {}).get("sql", "")
        ok(all(w in text for w in words) and text.endswith("statements sent: 0"),
           "update %s: %s, no statement sent" % (case, " / ".join(words)), repr(results.get(case)))


def seed_orders(rows):
    """Currencies in both cases, e-mails partly mixed-case, price_cents NULL,
    right or wrong, one order an hour from 2023-01-01 on."""
    q('INSERT INTO "opsdemo_Order" ("curCode", email, price, price_cents, created_at) '
      "SELECT (ARRAY['eur', 'usd', 'EUR', 'gbp', 'USD'])[g %% 5 + 1], "
      "CASE WHEN g %% 3 = 0 THEN 'Buyer.' || g || '@Example.COM' ELSE 'buyer.' || g || '@example.com' END, "
      "((g * 137) %% 100000) / 100.0, "
      "CASE g %% 4 WHEN 0 THEN NULL WHEN 2 THEN (g * 137) %% 100000 + 1 ELSE (g * 137) %% 100000 END, "
      "timestamptz '2023-01-01 00:00+00' + g * interval '1 hour' "
      "FROM generate_series(1, %s) g", [rows])
    q('ANALYZE "opsdemo_Order"')
    for table in ("order_seed", "order_expected"):
        q("DROP TABLE IF EXISTS %s" % table)
        q('CREATE TABLE %s AS SELECT * FROM "opsdemo_Order"' % table)
    snapshot_order_xmin()


def snapshot_order_xmin():
    q("DROP TABLE IF EXISTS order_xmin")
    q('CREATE TABLE order_xmin AS SELECT id, xmin::text AS x FROM "opsdemo_Order"')


def order_rows_written():
    """Rows of opsdemo_Order written (or inserted) since snapshot_order_xmin()."""
    return q1('SELECT count(*) FROM "opsdemo_Order" o LEFT JOIN order_xmin s USING (id) '
              "WHERE s.x IS DISTINCT FROM o.xmin::text")


def order_differences(expected="order_expected"):
    """Rows of opsdemo_Order that differ from `expected`, missing or extra."""
    return q1('SELECT count(*) FROM "opsdemo_Order" o FULL JOIN %s e USING (id) '
              "WHERE ROW(o.*) IS DISTINCT FROM ROW(e.*)" % expected)


# Runs inside "manage.py shell -c": 0013's first SafeUpdate and 0014's
# SafeDelete with dry_run=True, as a migration would run them.
DRY_RUNS = r'''
from django.db import connection
from django.db.migrations.loader import MigrationLoader
loader = MigrationLoader(connection)
state = loader.project_state(("opsdemo", "0012_order"))
for name in ("0013_normalize_orders", "0014_purge_old_orders"):
    op = loader.get_migration("opsdemo", name).operations[0]
    _, args, kwargs = op.deconstruct()
    kwargs["dry_run"] = True
    dry = type(op)(*args, **kwargs)
    print("SQL:", dry.describe())
    with connection.schema_editor(atomic=False) as editor:
        dry.database_forwards("opsdemo", editor, state, state)
print("RESULT: ran")
'''


# Runs inside "manage.py shell -c": SafeUpdate/SafeDelete with RawSQL the
# Django side cannot judge, one line per case with the SQLSTATE it failed with.
SERVER_REFUSED_UPDATES = r'''
import json
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models.expressions import RawSQL
from safe_backfill_ops import SafeDelete, SafeUpdate
state = MigrationLoader(connection).project_state(("opsdemo", "0012_order"))
cases = {
    "where with a second statement": SafeUpdate(
        "order", set={"email": "x"}, where=RawSQL("true); DELETE FROM order_seed; --", [])),
    "where not boolean": SafeDelete("order", where=RawSQL("price", [])),
    "aggregate in set": SafeUpdate("order", set={"price_cents": RawSQL("count(*)", [])}),
    "unknown column in where": SafeDelete("order", where=RawSQL("no_such_column = 1", [])),
}
for name, op in cases.items():
    try:
        with connection.schema_editor(atomic=False) as editor:
            op.database_forwards("opsdemo", editor, state, state)
        print("RESULT:", json.dumps([name, "ran", ""]))
    except Exception as exc:
        print("RESULT:", json.dumps([name, getattr(exc.__cause__, "pgcode", None), str(exc)]))
'''
SERVER_REFUSED_UPDATE_STATES = {
    "where with a second statement": "42601",
    "where not boolean": "42804",
    "aggregate in set": "42803",
    "unknown column in where": "42703",
}


def test_update_server_refusals():
    rc, out = manage("shell", "-c", SERVER_REFUSED_UPDATES)
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT: "):
            name, pgcode, message = json.loads(line[len("RESULT: "):])
            results[name] = (pgcode, message)
    for name, sqlstate in SERVER_REFUSED_UPDATE_STATES.items():
        ok(results.get(name, (None,))[0] == sqlstate,
           "opsdemo: SafeUpdate/SafeDelete with a RawSQL %s is refused by the extension with "
           "SQLSTATE %s, the error reaching the migration" % (name, sqlstate),
           "%r\n%s" % (results.get(name), tail(out)))
    ok(order_rows_written() == 0 and order_differences("order_seed") == 0
       and q1("SELECT count(*) FROM order_seed") == OPS_ROWS,
       "opsdemo: after those refusals opsdemo_Order and order_seed are unchanged")


def test_update_delete():
    rows = OPS_ROWS
    rc, out = manage("migrate", "opsdemo", "0012")
    seed_orders(rows)
    ok(rc == 0 and q1('SELECT count(*) FROM "opsdemo_Order"') == rows,
       "opsdemo: 0012 created opsdemo_Order; %d rows seeded" % rows, tail(out))

    test_update_compilation(run_update_cases())

    match_first = q1("SELECT count(*) FROM order_seed WHERE \"curCode\" IN ('eur', 'usd') "
                     "OR email <> lower(email)")
    match_second = q1("SELECT count(*) FROM order_seed "
                      "WHERE price_cents IS DISTINCT FROM (price * 100)::int")
    match_any = q1("SELECT count(*) FROM order_seed WHERE \"curCode\" IN ('eur', 'usd') "
                   "OR email <> lower(email) OR price_cents IS DISTINCT FROM (price * 100)::int")
    for update in ORDER_PLAIN_UPDATES:
        q(update)
    ok(0 < match_first < rows and 0 < match_second < rows and match_any < rows,
       "opsdemo: some rows match 0013's wheres, some not (%d, %d; %d of %d in all)"
       % (match_first, match_second, match_any, rows))

    rc, out = manage("sqlmigrate", "opsdemo", "0013")
    ok(rc == 0 and "CALL safe_update(tbl => '\"opsdemo_Order\"'::regclass, "
       "set => '\"curCode\" = UPPER(\"opsdemo_Order\".\"curCode\"), \"email\" = "
       "LOWER(\"opsdemo_Order\".\"email\")', \"where\" => '(\"opsdemo_Order\".\"curCode\" IN "
       "(''eur'', ''usd'') OR NOT (\"opsdemo_Order\".\"email\" = LOWER(\"opsdemo_Order\".\"email\")))', "
       "batch_size => %d, pause_ms => 0);" % BATCH in out
       and "set => '\"price_cents\" = CAST((\"opsdemo_Order\".\"price\" * 100) AS integer)'" in out,
       "opsdemo: sqlmigrate shows SafeUpdate's CALLs, set and where each one quoted parameter",
       tail(out))
    rc, out = manage("sqlmigrate", "opsdemo", "0014")
    ok(rc == 0 and "CALL safe_delete(tbl => '\"opsdemo_Order\"'::regclass, \"where\" => "
       "'(\"opsdemo_Order\".\"created_at\" < ''2023-07-01T00:00:00+00:00''::timestamptz AND "
       "NOT (\"opsdemo_Order\".\"curCode\" = ''EUR''))', batch_size => %d, pause_ms => 0);" % BATCH
       in out, "opsdemo: sqlmigrate shows SafeDelete's CALL", tail(out))

    # Refused before anything is sent: in an atomic migration, in transaction.atomic().
    rc, out = migrate_expecting_error("opsdemo", "0013", env={"OPSDEMO_FORCE_ATOMIC": "1"})
    ok("EXCEPTION: AtomicMigrationError" in out and "SafeUpdate of opsdemo.order" in out
       and "atomic = False" in out,
       "opsdemo: SafeUpdate in an atomic migration refuses, saying to set atomic = False", tail(out))
    rc, out = migrate_expecting_error("opsdemo", "0013", in_atomic=True)
    ok("EXCEPTION: AtomicMigrationError" in out and "transaction.atomic()" in out,
       "opsdemo: SafeUpdate inside transaction.atomic() refuses", tail(out))
    ok(order_rows_written() == 0 and order_differences("order_seed") == 0
       and "0013_normalize_orders" not in applied("opsdemo"),
       "opsdemo: the refused SafeUpdates changed no row and were not recorded")

    test_update_server_refusals()

    # Dry runs: the counts of the rows that match, nothing changed.
    rc, out = manage("shell", "-c", DRY_RUNS)
    counts = [int(n) for n in re.findall(r"NOTICE:\s+safe_(?:update|delete): .*dry run: (\d+) rows?", out)]
    # (0014's where counted on the table as it is now, before 0013)
    purge_now = q1("SELECT count(*) FROM order_seed WHERE created_at < '2023-07-01 00:00+00' "
                   "AND \"curCode\" <> 'EUR'")
    purge = q1("SELECT count(*) FROM order_expected WHERE created_at < '2023-07-01 00:00+00' "
               "AND \"curCode\" <> 'EUR'")
    ok("RESULT: ran" in out and counts == [match_first, purge_now],
       "opsdemo: dry_run=True of 0013's first SafeUpdate and of 0014's SafeDelete report "
       "%d and %d matching rows" % (match_first, purge_now), tail(out, 20))
    ok(order_rows_written() == 0 and order_differences("order_seed") == 0,
       "opsdemo: the dry runs changed nothing", "%r rows written" % order_rows_written())

    rc, out = manage("migrate", "opsdemo", "0013",
                     env={"PGOPTIONS": "-c safe_backfill.progress_interval=1"})
    ok(rc == 0 and re.search(r"Applying opsdemo\.0013_normalize_orders\.\.\.\s*\n"
                             r"(?:.*\n)*?\s+NOTICE:\s+safe_update: ", out) is not None
       and re.search(r"^ OK$", out, re.M) is not None,
       "opsdemo: 0013 (two SafeUpdates) ran, the extension's NOTICEs in the migrate output",
       tail(out, 30))
    updated = [int(n) for n in re.findall(r"NOTICE:\s+safe_update: \"?opsdemo_Order\"?: updated (\d+) rows?", out)]
    ok(updated == [match_first, match_second],
       "opsdemo: the summaries count the rows each where matched (%d, %d)" % (match_first, match_second),
       "got %r\n%s" % (updated, tail(out, 30)))
    differing = order_differences()
    ok(differing == 0, "opsdemo: every row equals what the plain UPDATEs give (%d rows)" % rows,
       "%r rows differ" % (differing,))
    written = order_rows_written()
    ok(written == match_any,
       "opsdemo: exactly the %d rows that matched were written, no other" % match_any,
       "%r rows written" % (written,))
    transactions = q1('SELECT count(DISTINCT o.xmin::text) FROM "opsdemo_Order" o JOIN order_xmin s '
                      "USING (id) WHERE s.x <> o.xmin::text")
    ok(transactions >= max(2, match_first // BATCH),
       "opsdemo: the updates committed in batches (%d transactions)" % transactions)

    # Backwards: nothing is undone, and the output says so; forwards again: a no-op.
    snapshot_order_xmin()
    rc, out = manage("migrate", "opsdemo", "0012")
    ok(rc == 0 and out.count("not undone") == 2 and order_differences() == 0
       and order_rows_written() == 0,
       "opsdemo: reversing 0013 writes nothing back and says so", tail(out))
    rc, out = manage("migrate", "opsdemo", "0013")
    updated = [int(n) for n in re.findall(r"NOTICE:\s+safe_update: \"?opsdemo_Order\"?: updated (\d+) rows?", out)]
    ok(rc == 0 and updated == [0, 0] and order_rows_written() == 0 and order_differences() == 0,
       "opsdemo: applying 0013 again updates no row (its wheres no longer match)",
       "updated %r, %r rows written\n%s" % (updated, order_rows_written(), tail(out, 20)))

    # SafeDelete: refused when atomic; then every matching row deleted once, in batches.
    rc, out = migrate_expecting_error("opsdemo", "0014", env={"OPSDEMO_FORCE_ATOMIC": "1"})
    ok("EXCEPTION: AtomicMigrationError" in out and "SafeDelete of opsdemo.order" in out
       and "atomic = False" in out and q1('SELECT count(*) FROM "opsdemo_Order"') == rows,
       "opsdemo: SafeDelete in an atomic migration refuses and deletes nothing", tail(out))
    q("CREATE TABLE order_deletes (id bigint, txid bigint)")
    q("CREATE FUNCTION order_deleted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "INSERT INTO order_deletes VALUES (OLD.id, txid_current()); RETURN OLD; END $$")
    q('CREATE TRIGGER order_deleted AFTER DELETE ON "opsdemo_Order" '
      "FOR EACH ROW EXECUTE FUNCTION order_deleted()")
    q("CREATE TABLE order_purge AS SELECT id FROM order_expected "
      "WHERE created_at < '2023-07-01 00:00+00' AND \"curCode\" <> 'EUR'")
    q(ORDER_PLAIN_DELETE)
    rc, out = manage("migrate", "opsdemo", "0014")
    deleted = re.findall(r"NOTICE:\s+safe_delete: \"?opsdemo_Order\"?: deleted (\d+) rows?", out)
    ok(rc == 0 and deleted == [str(purge)],
       "opsdemo: 0014 (SafeDelete, a Q on a date) ran; its summary counts %d deleted rows" % purge,
       tail(out, 20))
    differing = order_differences()
    ok(differing == 0, "opsdemo: the table equals what the plain DELETE gives",
       "%r rows differ" % (differing,))
    ok(q1("SELECT count(*) FROM order_deletes") == purge
       and q1("SELECT count(*) FROM (SELECT id FROM order_deletes EXCEPT SELECT id FROM order_purge) x") == 0,
       "opsdemo: each matching row was deleted once, no other (the row trigger fired %d times)" % purge)
    transactions = q1("SELECT count(DISTINCT txid) FROM order_deletes")
    ok(transactions >= max(2, purge // BATCH),
       "opsdemo: the deletes committed in batches (%d transactions)" % transactions)

    rc, out = manage("migrate", "opsdemo", "0013")
    ok(rc != 0 and "is not reversible" in out and "0014_purge_old_orders" in applied("opsdemo")
       and order_differences() == 0,
       "opsdemo: 0014 cannot be reversed (a delete cannot be undone); nothing changed", tail(out))
    ok(len(applied("opsdemo")) == 14, "opsdemo: 14 migrations applied")


def test_state_matches_models():
    rc, out = manage("makemigrations", "--check", "--dry-run")
    ok(rc == 0 and "No changes detected" in out,
       "the migration state (SeparateDatabaseAndState, SafeSetNotNull) matches models.py",
       tail(out))


def main():
    started = time.monotonic()
    setup_database()
    test_demoapp_setup()
    test_demoapp_atomic_refused()
    test_demoapp_backfill_under_traffic()
    test_demoapp_after_backfill()
    test_demoapp_not_null()
    test_demoapp_state()
    test_demoapp_rollback_and_replay()
    test_operations()
    test_backfill_with_set_not_null()
    test_expression_backfill()
    test_detached_two_deploys()
    test_update_delete()
    test_state_matches_models()
    print("1..%d" % counter)
    print("# django summary: %d tests, %d failed, %d skipped, %.1f s"
          % (counter, failures, len(skipped), time.monotonic() - started))
    monitor.close()
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        status = main()
    except BaseException:
        import traceback
        ok(False, "the test ran to its end", traceback.format_exc())
        status = 2
    sys.exit(status)

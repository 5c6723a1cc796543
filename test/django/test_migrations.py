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

"""
Run a framework's migration command while other sessions use large_user
(see framework_test.sh), and print TAP lines ("ok - ..." / "not ok - ...",
numbered by the caller) about what they saw.

    migration_under_traffic.py --label alembic --log FILE -- alembic upgrade head

  * Before the command starts, a session locks the row at 60% of the ids
    (FOR NO KEY UPDATE): the backfill stops there, provably in the middle of
    the table, until the lock is released.
  * While it is stopped there: the batches before are committed and
    visible; the migration's backend holds no lock on large_user that
    blocks readers or writers; another session updates rows before and
    after it, inserts a row with NULL in the new columns (which the
    backfill must still fill) and reads, under lock_timeout 2s.
  * All along, from before the command starts to after it ends, a
    background session inserts rows (writing the new columns, as the new
    application code would), updates and reads; it must see no error.
    The test waits until it has made progress while the migration was
    stopped, so the two provably overlapped.

PGHOST/PGPORT/PGUSER/PGDATABASE name the database.  The command's output
goes to --log.  Exit status 0 when every check passed, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

import psycopg2

# A safety net for waits, not a pass/fail threshold.
WAIT_LIMIT_S = 120
# The background traffic waits at most this long for a lock: longer than any
# short ACCESS EXCLUSIVE step of safe_set_not_null takes on a busy machine.
TRAFFIC_LOCK_TIMEOUT = "20s"

failures = 0


def ok(condition, description, details=None):
    global failures
    print("%s - %s" % ("ok" if condition else "not ok", description))
    if not condition:
        failures += 1
        for line in str(details or "").rstrip("\n").splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return condition


def connect(autocommit=True, application_name="migration_under_traffic"):
    conn = psycopg2.connect(application_name=application_name)
    conn.autocommit = autocommit
    return conn


class Traffic(threading.Thread):
    """Inserts, updates and reads in a loop on its own connection until stopped."""

    def __init__(self, ids):
        super().__init__(daemon=True)
        self.ids = ids
        self.stop = threading.Event()
        self.counts = {"insert": 0, "update": 0, "read": 0}
        self.errors = []
        self.progress = threading.Condition()

    def writes(self):
        with self.progress:
            return self.counts["insert"] + self.counts["update"]

    def run(self):
        try:
            conn = connect(application_name="background traffic")
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", [TRAFFIC_LOCK_TIMEOUT])
        except Exception as exc:
            self.errors.append("connect: %r" % exc)
            return
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO large_user (name, email, status, email_lower) "
                        "VALUES (%s, %s, 'active', lower(%s))",
                        ["traffic %d" % n, "Traffic.%d@Example.COM" % n,
                         "Traffic.%d@Example.COM" % n])
                    self._count("insert")
                    cur.execute("UPDATE large_user SET name = name || '+' WHERE id = %s",
                                [self.ids[(n * 7919) % len(self.ids)]])
                    if cur.rowcount != 1:
                        raise AssertionError("update found %d rows" % cur.rowcount)
                    self._count("update")
                    cur.execute("SELECT id, name, email FROM large_user WHERE id >= %s "
                                "ORDER BY id LIMIT 10", [self.ids[(n * 104729) % len(self.ids)]])
                    cur.fetchall()
                    self._count("read")
            except Exception as exc:
                self.errors.append("round %d: %s: %s" % (n, type(exc).__name__, exc))
                if len(self.errors) > 20:
                    break
            # Leave the server's cores to the migration now and then.
            time.sleep(0.01)
        conn.close()

    def _count(self, kind):
        with self.progress:
            self.counts[kind] += 1
            self.progress.notify_all()

    def wait_for_writes(self, at_least):
        deadline = time.monotonic() + WAIT_LIMIT_S
        with self.progress:
            while (self.counts["insert"] + self.counts["update"] < at_least
                   and self.is_alive() and time.monotonic() < deadline):
                self.progress.wait(1)
            return self.counts["insert"] + self.counts["update"]


def waiting_call(monitor, blocker_pid, proc):
    """The pid of the backend running a CALL safe_backfill blocked by our lock."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        with monitor.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND %s = ANY(pg_blocking_pids(pid)) AND query ILIKE %s",
                        [blocker_pid, "%call safe_backfill%"])
            row = cur.fetchone()
        if row:
            return row[0]
        time.sleep(0.05)
    return None


def q1(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def checks_while_stopped(label, monitor, waiting_pid, held_id, ids, rows):
    filled = q1(monitor, "SELECT count(*) FROM large_user WHERE status IS NOT NULL AND id <= %s",
                [ids[-1]])
    ok(0 < filled < rows,
       "%s: the batches before the locked row are committed and visible "
       "(%d of %d seeded rows filled)" % (label, filled, rows))
    with monitor.cursor() as cur:
        cur.execute("SELECT mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' "
                    "AND relation = 'large_user'::regclass", [waiting_pid])
        modes = sorted(r[0] for r in cur.fetchall())
    ok(set(modes) <= {"AccessShareLock", "RowShareLock", "RowExclusiveLock"},
       "%s: the running backfill holds no lock on large_user that blocks readers "
       "or writers (%s)" % (label, ", ".join(modes)))

    errors = []
    observer = connect(application_name="observer")
    with observer.cursor() as cur:
        cur.execute("SET lock_timeout = '2s'")
    for round_no in range(3):
        try:
            with observer.cursor() as cur:
                for row_id in (ids[round_no], ids[-1 - round_no]):
                    cur.execute("UPDATE large_user SET name = name || '.' WHERE id = %s", [row_id])
                    if cur.rowcount != 1:
                        raise AssertionError("update of id %d found %d rows" % (row_id, cur.rowcount))
                cur.execute("INSERT INTO large_user (name, email) VALUES (%s, %s)",
                            ["inserted mid-run %d" % round_no, "Mid.Run.%d@Example.COM" % round_no])
                cur.execute("SELECT id, name, status FROM large_user ORDER BY id LIMIT 20")
                if len(cur.fetchall()) != 20:
                    raise AssertionError("the first 20 rows were not all read")
        except Exception as exc:
            errors.append("round %d: %s: %s" % (round_no, type(exc).__name__, exc))
    observer.close()
    ok(not errors,
       "%s: while the backfill waits at id %d another session updated rows before and "
       "after it, inserted rows with NULL status and read, 3 times, each under "
       "lock_timeout 2s" % (label, held_id), "\n".join(errors))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    label = args.label

    monitor = connect()
    with monitor.cursor() as cur:
        cur.execute("SELECT id FROM large_user ORDER BY id")
        ids = [r[0] for r in cur.fetchall()]
    rows = len(ids)
    held_id = ids[rows * 3 // 5]

    blocker = connect(autocommit=False, application_name="row lock holder")
    blocker_pid = blocker.get_backend_pid()
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM large_user WHERE id = %s FOR NO KEY UPDATE", [held_id])

    # Not the locked row: the traffic would wait for it.
    traffic = Traffic([i for i in ids if i != held_id])
    traffic.start()
    log = open(args.log, "w")
    proc = subprocess.Popen(args.command, stdout=log, stderr=subprocess.STDOUT)
    try:
        waiting_pid = waiting_call(monitor, blocker_pid, proc)
        ok(waiting_pid is not None,
           "%s: the migration is running and its backfill reached the row locked at id %d"
           % (label, held_id), "the command exited with %r" % proc.poll())
        if waiting_pid is not None:
            checks_while_stopped(label, monitor, waiting_pid, held_id, ids, rows)
            before = traffic.writes()
            after = traffic.wait_for_writes(before + 5)
            ok(after >= before + 5 and proc.poll() is None,
               "%s: the background traffic wrote rows while the migration was stopped "
               "in the middle of the table (%d writes by then)" % (label, after))
    finally:
        blocker.rollback()
        blocker.close()
        try:
            proc.wait(timeout=WAIT_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        traffic.stop.set()
        traffic.join(WAIT_LIMIT_S)
        log.close()
    ok(proc.returncode == 0, "%s: the migration finished once the row lock was released "
       "(exit status %d)" % (label, proc.returncode), open(args.log).read()[-3000:])
    ok(not traffic.errors and traffic.writes() > 0,
       "%s: the background traffic (%d inserts, %d updates, %d reads through the "
       "migration) saw no error" % (label, traffic.counts["insert"], traffic.counts["update"],
                                    traffic.counts["read"]),
       "\n".join(traffic.errors))
    monitor.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

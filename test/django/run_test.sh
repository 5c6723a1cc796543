#!/usr/bin/env bash
# Django migrations test: runs this directory's Django project against an
# already running PostgreSQL where the safe_backfill extension is installed
# (PGHOST/PGPORT/PGUSER point at it; it must be allowed to create databases).
# It creates (and first drops) the database $DJANGO_TEST_DB, seeds it and
# migrates step by step.  Prints TAP lines and, when it ran to the end,
# "# django: done".
#
#   DJANGO_TEST_ROWS   large_user rows to seed (default 50000)
#   DJANGO_TEST_BATCH  backfill batch size (default 1000)
#   DJANGO_TEST_DB     database name (default django_safe_backfill)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=/usr/bin/python3   # Debian's python3-django and python3-psycopg2 live here

TMPDIR_DJ=$(mktemp -d "${TMPDIR:-/tmp}/django_safe_backfill.XXXXXX")
trap 'rm -rf "$TMPDIR_DJ"' EXIT

export PYTHONDONTWRITEBYTECODE=1
export PGDATABASE=${DJANGO_TEST_DB:-django_safe_backfill}
export DJANGO_TEST_ROWS=${DJANGO_TEST_ROWS:-50000}
export SAFE_BACKFILL_BATCH_SIZE=${DJANGO_TEST_BATCH:-1000}
export DJANGO_TEST_TMP=$TMPDIR_DJ
unset PGOPTIONS DEMOAPP_FORCE_ATOMIC OPSDEMO_FORCE_ATOMIC

if ! "$PYTHON" -c 'import django, psycopg2' 2>"$TMPDIR_DJ/import.err"; then
    echo "not ok 1 - python3-django and python3-psycopg2 are importable by $PYTHON"
    sed 's/^/#   /' "$TMPDIR_DJ/import.err"
    exit 1
fi
echo "# django $("$PYTHON" -c 'import django; print(django.get_version())'), rows=$DJANGO_TEST_ROWS, batch=$SAFE_BACKFILL_BATCH_SIZE, database=$PGDATABASE"

cd "$HERE"
"$PYTHON" "$HERE/test_migrations.py"
rc=$?
case $rc in
    0|1) echo "# django: done" ;;
    *) echo "not ok - test_migrations.py stopped early (exit status $rc)" ;;
esac
exit $rc

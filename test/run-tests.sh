#!/usr/bin/env bash
# Install what is missing, build and install the extension, and run every test:
# pg_regress, isolation specs, TAP tests and the Django migrations test, each
# against throwaway clusters of their own.  Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

APT_PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-contrib-15 libipc-run-perl python3-django python3-psycopg2 make gcc"

install_missing_packages() {
    local missing=""
    for p in $APT_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages:$missing (run as root to install them)" >&2
        return 1
    fi
    echo "installing:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

install_missing_packages || exit 1
export PATH="$(pg_config --bindir):$PATH"
. "$ROOT/test/cluster.sh"

echo "== build and install"
make -s clean >/dev/null 2>&1
if ! make -s >/tmp/safe_backfill_build.log 2>&1 || ! make -s install >>/tmp/safe_backfill_build.log 2>&1; then
    cat /tmp/safe_backfill_build.log
    echo "0 passed, 1 failed"
    exit 1
fi

# Tests write results next to their sources; give the postgres OS user a copy.
WORK=$(mktemp -d /tmp/safe_backfill_test.XXXXXX)
cp -a "$ROOT/." "$WORK/src"
[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK"
CLUSTER="$WORK/cluster"
trap 'cluster_stop "$CLUSTER"; [ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0

# Count pg_regress / pg_isolation_regress result lines ("test x ... ok").
count_regress() {
    local log=$1 ok bad
    ok=$(grep -cE '^(ok|test |     ).*\.\.\. ok|^ok [0-9]+ ' "$log")
    bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$log")
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
}

run_section() {
    local name=$1
    shift
    echo "== $name"
    as_pg_owner env PATH="$PATH" PGHOST="${PGHOST:-}" PGPORT="${PGPORT:-}" PGUSER=postgres "$@"
}

cluster_start "$CLUSTER" "$(free_port 54330)" || { echo "0 passed, 1 failed"; exit 1; }

cd "$WORK/src"
run_section "pg_regress" make -s installcheck-regress-only 2>&1 | tee "$WORK/regress.log"
count_regress "$WORK/regress.log"
[ -f regression.diffs ] && cat regression.diffs

run_section "isolation" make -s installcheck-isolation-only 2>&1 | tee "$WORK/isolation.log"
count_regress "$WORK/isolation.log"
[ -f test/output_iso/regression.diffs ] && cat test/output_iso/regression.diffs

run_section "TAP" make -s prove_installcheck PROVE_FLAGS="--timer" 2>&1 | tee "$WORK/tap.log"
PASSED=$((PASSED + $(grep -cE '^\[[0-9:]+\] test/t/.* ok' "$WORK/tap.log")))
FAILED=$((FAILED + $(grep -cE '^\[[0-9:]+\] test/t/.* (Failed|Dubious|skipped: .*fail)' "$WORK/tap.log")))
grep -q "Result: FAIL" "$WORK/tap.log" && ! grep -qE 'test/t/.* (Failed|Dubious)' "$WORK/tap.log" && FAILED=$((FAILED + 1))

if [ -x test/django/run_test.sh ]; then
    run_section "django" test/django/run_test.sh 2>&1 | tee "$WORK/django.log"
    PASSED=$((PASSED + $(grep -cE '^ok [0-9]+' "$WORK/django.log")))
    FAILED=$((FAILED + $(grep -cE '^not ok [0-9]+' "$WORK/django.log")))
    grep -qE '^# django: (done|finished)' "$WORK/django.log" || FAILED=$((FAILED + 1))
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]

#!/usr/bin/env bash
# Install what is missing, build and install the extension, and run every test:
# pg_regress, isolation specs, TAP tests and the Django migrations test, each
# against throwaway clusters of their own.  Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

APT_PACKAGES="postgresql-15 postgresql-server-dev-15 libipc-run-perl python3-django python3-psycopg2 make gcc"

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
    echo "installing the missing Debian packages (a few minutes on a fresh machine):$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

install_missing_packages || exit 1
# PG_CONFIG picks the PostgreSQL installation to build and test against
# (default: the pg_config on PATH).
export PG_CONFIG=${PG_CONFIG:-pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. "$ROOT/test/cluster.sh"

echo "== build (make, with -Wall -Werror) and install (make install into $("$PG_CONFIG" --pkglibdir))"
BUILD_LOG=$(mktemp /tmp/safe_backfill_build.XXXXXX)
make -s clean >/dev/null 2>&1
# Users build without -Werror (a newer compiler's new warning must not break
# their install); the tests hold the code to it.
if ! make -s COPT="-Wall -Werror" >"$BUILD_LOG" 2>&1 || ! make -s install >>"$BUILD_LOG" 2>&1; then
    cat "$BUILD_LOG"
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
# Test files that reported themselves skipped (e.g. 010_citus.pl without
# Citus installed): counted apart, never as passed.
SKIPPED=""

# Count pg_regress / pg_isolation_regress result lines: up to 15
# "test x ... ok" / "... FAILED", from 16 on TAP-like "ok 1 - x  12 ms" /
# "not ok 1 - x". A run that broke off without a verdict line counts as one
# failure.
count_regress() {
    local log=$1 status=$2 ok bad
    ok=$(grep -cE '^(test |     ).*\.\.\. ok|^ok [0-9]+ ' "$log")
    bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$log")
    [ "$status" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
}

run_section() {
    local name=$1
    shift
    echo "== $name"
    as_pg_owner env PATH="$PATH" PG_CONFIG="$PG_CONFIG" PGHOST="${PGHOST:-}" PGPORT="${PGPORT:-}" PGUSER=postgres "$@"
}

# No autovacuum: hot_rounds asserts how many updates are HOT, which depends on
# pruning between rounds, which any other session's snapshot (an autoanalyze
# of an earlier test's table) can hold back.  The tests vacuum what they need.
cluster_start "$CLUSTER" "$(free_port 54330)" "autovacuum = off" || { echo "0 passed, 1 failed"; exit 1; }

cd "$WORK/src"
run_section "pg_regress" make -s installcheck-regress-only 2>&1 | tee "$WORK/regress.log"
count_regress "$WORK/regress.log" "${PIPESTATUS[0]}"
[ -f regression.diffs ] && cat regression.diffs

run_section "isolation" make -s installcheck-isolation-only 2>&1 | tee "$WORK/isolation.log"
count_regress "$WORK/isolation.log" "${PIPESTATUS[0]}"
[ -f test/output_iso/regression.diffs ] && cat test/output_iso/regression.diffs

# TAP: one result per test file; prove's own verdict decides if none parsed.
run_section "TAP" make -s installcheck-tap-only 2>&1 | tee "$WORK/tap.log"
tap_status=${PIPESTATUS[0]}
tap_ok=$(grep -cE '^test/t/[^ ]+ \.+ ok' "$WORK/tap.log")
# prove: "test/t/010_citus.pl .. skipped: <reason>"
SKIPPED="$SKIPPED $(grep -oE '^test/t/[^ ]+ \.+ skipped' "$WORK/tap.log" | cut -d' ' -f1 | xargs -r -n1 basename | tr '\n' ' ')"
# prove's "Test Summary Report" names each file that failed.
tap_failed=$(grep -oE '^test/t/[^ ]+\.pl \(Wstat' "$WORK/tap.log" | cut -d' ' -f1 | sort -u)
tap_bad=$(echo "$tap_failed" | grep -c .)
[ "$tap_status" -ne 0 ] && [ "$tap_bad" -eq 0 ] && tap_bad=1
PASSED=$((PASSED + tap_ok))
FAILED=$((FAILED + tap_bad))
# The end of the failed files' logs (the test's and its servers'), no others.
for t in $tap_failed; do
    name=$(basename "$t" .pl)
    for f in tmp_check/log/regress_log_"$name" tmp_check/log/"$name"_*.log; do
        [ -f "$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$f"; }
    done
done

if [ -x test/django/run_test.sh ]; then
    run_section "django" test/django/run_test.sh 2>&1 | tee "$WORK/django.log"
    PASSED=$((PASSED + $(grep -cE '^ok [0-9]+' "$WORK/django.log")))
    FAILED=$((FAILED + $(grep -cE '^not ok [0-9]+' "$WORK/django.log")))
    grep -qE '^# django: (done|finished)' "$WORK/django.log" || FAILED=$((FAILED + 1))
fi

SKIPPED=$(echo $SKIPPED)
echo "$(echo $SKIPPED | wc -w) skipped${SKIPPED:+ ($SKIPPED)}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]

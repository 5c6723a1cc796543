#!/usr/bin/env bash
# Install what is missing, build and install the extension, and run every test:
# pg_regress (the whole suite, then each file alone in a fresh database),
# isolation specs, TAP tests and the framework migrations tests (Django,
# Alembic, ActiveRecord, knex), each against throwaway clusters of their own.  Ends with "N passed, M failed".
#
# The checkout is only read: the build and every test output happen in a
# private copy under a work directory that is removed at the end.  Several
# runs may go at the same time, from one checkout or several.
#
# Environment:
#   PG_CONFIG                the PostgreSQL installation to build against,
#                            install into and test (default: the pg_config on
#                            PATH; Debian's postgresql-15 is installed when
#                            it is missing).  Debian's server packages are
#                            installed only for a Debian PG_CONFIG
#                            (/usr/lib/postgresql/<major>/bin) or none.
#   TMPDIR                   where the work directory goes (default /tmp); as
#                            root it must be reachable by the postgres OS
#                            user, who runs the servers and the tests.
#   SAFE_BACKFILL_TEST_PORT  the first port tried for the test cluster
#                            (default 54330; the next free one is taken).
#   KEEP_TEST_DIR=1          keep the work directory (build log, results,
#                            server and TAP logs) and print where it is.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# Debian's server packages for the PostgreSQL that PG_CONFIG names, or none
# when it names another installation (a source build, a relocated copy).
debian_server_packages() {
    local pgc=${PG_CONFIG:-pg_config} bindir major
    if command -v "$pgc" >/dev/null 2>&1; then
        bindir=$("$pgc" --bindir 2>/dev/null)
    elif [ -n "${PG_CONFIG:-}" ]; then
        bindir=$(dirname "$pgc")    # e.g. /usr/lib/postgresql/16/bin, not installed yet
    else
        bindir=/usr/lib/postgresql/15/bin
    fi
    case "$bindir" in
        /usr/lib/postgresql/[0-9]*/bin)
            major=${bindir#/usr/lib/postgresql/}
            major=${major%/bin}
            echo "postgresql-$major postgresql-server-dev-$major" ;;
    esac
}

APT_PACKAGES="$(debian_server_packages) libipc-run-perl python3-django python3-psycopg2 make gcc
    python3-alembic ruby-activerecord ruby-pg"
# Debian's node and npm only when there is none: a NodeSource nodejs brings
# its own npm, which Debian's npm package would conflict with.  (knex and pg
# come from the npm registry, installed by test/knex/run_test.sh.)
command -v node >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES npm"

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
export PG_CONFIG=${PG_CONFIG:-pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. "$ROOT/test/cluster.sh"
. "$ROOT/test/install.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/safe_backfill_test.XXXXXX") || { echo "0 passed, 1 failed"; exit 1; }
CLUSTER="$WORK/cluster"
cleanup() {
    cluster_stop "$CLUSTER"
    if [ -n "${KEEP_TEST_DIR:-}" ]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy to build and test in; "make clean" there drops whatever
# build products the checkout holds, the checkout itself stays as it is.
cp -a "$ROOT/." "$WORK/src"
make -C "$WORK/src" -s clean >/dev/null 2>&1

echo "== build (make, with -Wall -Werror) and install (make install into $("$PG_CONFIG" --pkglibdir))"
# Users build without -Werror (a newer compiler's new warning must not break
# their install); the tests hold the code to it.
if ! make -C "$WORK/src" -s COPT="-Wall -Werror" >"$WORK/build.log" 2>&1 ||
   ! install_built_extension "$WORK/src" >>"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"
    echo "0 passed, 1 failed"
    exit 1
fi

# The servers and the tests run as the postgres OS user, in the copy.
mkdir "$WORK/tmp"
if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$WORK"
    if ! as_pg_owner test -w "$WORK/src"; then
        echo "the postgres OS user cannot reach $WORK (TMPDIR=${TMPDIR:-}): choose a TMPDIR it can enter"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

# security.sql uses citext, from PostgreSQL's contrib (in Debian's
# postgresql-15; a source build needs "make -C contrib/citext install").
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/citext.control" ]; then
    echo "warning: citext (PostgreSQL's contrib) is not installed: the security test will fail"
fi

PASSED=0
FAILED=0
# Test files that reported themselves skipped (e.g. 010_citus.pl without
# Citus installed): counted apart, never as passed.
SKIPPED=""

# Count pg_regress / pg_isolation_regress result lines: up to 15
# "test x ... ok" / "... FAILED", from 16 on TAP-like "ok 1 - x  12 ms" /
# "not ok 1 - x"; and installcheck-regress-alone's "alone: x ... ok". A run
# that broke off without a verdict line counts as one failure.
count_regress() {
    local log=$1 status=$2 ok bad
    ok=$(grep -cE '^(test |     |alone: ).*\.\.\. ok|^ok [0-9]+ ' "$log")
    bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$log")
    [ "$status" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
}

# The structure of the build: only the entry points are exported, and the
# modules call each other only downwards (tools/check-layers names the layers).
check_structure() {
    local name=$1
    shift
    if "$@" >"$WORK/$name.log" 2>&1; then
        echo "structure: $name ... ok ($(tail -n 1 "$WORK/$name.log"))"
        PASSED=$((PASSED + 1))
    else
        echo "structure: $name ... FAILED"
        cat "$WORK/$name.log"
        FAILED=$((FAILED + 1))
    fi
}
echo "== structure"
check_structure exports "$WORK/src/tools/check-exports" "$WORK/src"
check_structure layers /usr/bin/python3 "$WORK/src/tools/check-layers" "$WORK/src"
check_structure version /usr/bin/python3 "$WORK/src/tools/check-version" "$WORK/src"

# Temporary files of the tests (TAP's socket directories, Django's) go to the
# work directory, which the postgres OS user owns and which is removed at the end.
run_section() {
    local name=$1
    shift
    echo "== $name"
    as_pg_owner env PATH="$PATH" PG_CONFIG="$PG_CONFIG" PGHOST="${PGHOST:-}" PGPORT="${PGPORT:-}" PGUSER=postgres \
        TMPDIR="$WORK/tmp" "$@"
}

# No autovacuum: hot_rounds asserts how many updates are HOT, which depends on
# pruning between rounds, which any other session's snapshot (an autoanalyze
# of an earlier test's table) can hold back.  The tests vacuum what they need.
PORT=$(free_port "${SAFE_BACKFILL_TEST_PORT:-54330}") || { echo "no free port"; echo "0 passed, 1 failed"; exit 1; }
cluster_start "$CLUSTER" "$PORT" "autovacuum = off" || { echo "0 passed, 1 failed"; exit 1; }

cd "$WORK/src"
run_section "pg_regress" make -s installcheck-regress-only 2>&1 | tee "$WORK/regress.log"
count_regress "$WORK/regress.log" "${PIPESTATUS[0]}"
[ -f regression.diffs ] && cat regression.diffs

# Each file alone, in a fresh database: none may depend on an earlier one.
# (Its diffs are printed after its FAILED line.)
run_section "pg_regress, each file alone" make -s installcheck-regress-alone 2>&1 | tee "$WORK/alone.log"
count_regress "$WORK/alone.log" "${PIPESTATUS[0]}"

run_section "isolation" make -s installcheck-isolation-only 2>&1 | tee "$WORK/isolation.log"
count_regress "$WORK/isolation.log" "${PIPESTATUS[0]}"
[ -f test/output_iso/regression.diffs ] && cat test/output_iso/regression.diffs

# TAP: one result per test file; prove's own verdict decides if none parsed.
run_section "TAP" make -s installcheck-tap-only 2>&1 | tee "$WORK/tap.log"
tap_status=${PIPESTATUS[0]}
tap_ok=$(grep -cE '^test/t/[^ ]+ \.+ ok' "$WORK/tap.log")
# prove: "test/t/010_citus.pl .. skipped: <reason>"
SKIPPED="$SKIPPED $(grep -oE '^test/t/[^ ]+ \.+ skipped' "$WORK/tap.log" | cut -d' ' -f1 | xargs -r -n1 basename | tr '\n' ' ')"
# prove's "Test Summary Report" has a line per file that did not pass, its
# name padded with spaces: "test/t/005_crash_resume.pl   (Wstat: 256 (exited 1) Tests: 9 Failed: 1)".
# A file listed with Wstat 0 and no failed test only had TODO tests pass.
tap_failed=$(grep -E '^test/t/[^ ]+\.pl +\(Wstat: ' "$WORK/tap.log" |
    grep -vE '\(Wstat: 0 Tests: [0-9]+ Failed: 0\)' | cut -d' ' -f1 | sort -u)
tap_bad=$(printf '%s\n' $tap_failed | grep -c .)
if grep -q 'TAP tests not enabled' "$WORK/tap.log"; then
    echo "the TAP tests need a PostgreSQL configured with --enable-tap-tests (and libipc-run-perl installed before configure)"
    tap_bad=$((tap_bad + 1))
fi
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

# A framework's migrations test, test/NAME/run_test.sh: its "ok N" and
# "not ok N" lines count.  It ends with "# NAME: done"; one that printed
# "# NAME: SKIPPED (<reason>)" (knex without the npm registry) counts as
# skipped, never as passed; one that printed neither stopped early and
# counts as one failure.
run_framework_test() {
    local name=$1 log=$WORK/$1.log
    [ -x "test/$name/run_test.sh" ] || return 0
    run_section "$name" "test/$name/run_test.sh" 2>&1 | tee "$log"
    PASSED=$((PASSED + $(grep -cE '^ok [0-9]+' "$log")))
    FAILED=$((FAILED + $(grep -cE '^not ok [0-9]+' "$log")))
    if grep -qE "^# $name: SKIPPED" "$log"; then
        SKIPPED="$SKIPPED $name"
    elif ! grep -qE "^# $name: (done|finished)" "$log"; then
        FAILED=$((FAILED + 1))
    fi
}
for framework in django alembic rails knex; do
    run_framework_test "$framework"
done

SKIPPED=$(echo $SKIPPED)
echo "$(echo $SKIPPED | wc -w) skipped${SKIPPED:+ ($SKIPPED)}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]

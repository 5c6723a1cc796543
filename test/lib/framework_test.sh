# Shared by the framework migration tests (test/alembic, test/rails,
# test/knex run_test.sh): TAP output, a database seeded with the same
# large_user table for each, and looks at the catalog.  Sourced with PGHOST,
# PGPORT, PGUSER and PGDATABASE set (a running PostgreSQL where the
# safe_backfill extension is installed and the user may create databases).
#
# Each framework's migrations do the same thing to large_user(id, name,
# email): add status and email_lower (nullable), backfill status with
# 'active' and email_lower with lower(email), then make both NOT NULL.

FRAMEWORK_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=/usr/bin/python3   # Debian's python3-psycopg2 lives here

# ok DESCRIPTION COMMAND...: "ok - DESCRIPTION" if the command succeeds.
# The lines are numbered by tap_number at the end of the pipe.
ok() {
    local description=$1
    shift
    if "$@"; then
        echo "ok - $description"
    else
        echo "not ok - $description"
        return 1
    fi
}

# is DESCRIPTION GOT EXPECTED
is() {
    if [ "$2" = "$3" ]; then
        echo "ok - $1"
    else
        echo "not ok - $1"
        echo "#   got:      '$2'"
        echo "#   expected: '$3'"
        return 1
    fi
}

diag() { sed 's/^/#   /'; }

# The last lines of a log, as TAP diagnostics.
diag_tail() { tail -n "${2:-15}" "$1" | diag; }

# Number "ok - x" / "not ok - x" lines and print the plan at the end.
tap_number() {
    awk '/^ok - / { n++; sub(/^ok - /, "ok " n " - ") }
         /^not ok - / { n++; sub(/^not ok - /, "not ok " n " - ") }
         { print; fflush() }
         END { print "1.." n + 0 }'
}

q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

# The database for one framework's test: dropped if it exists, created with
# the extension and large_user seeded with ROWS rows.
setup_database() {
    local db=$1 rows=$2
    psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
        -c "CREATE DATABASE \"$db\"" >/dev/null || return 1
    psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<SQL || return 1
CREATE EXTENSION safe_backfill;
CREATE TABLE large_user (
    id    bigserial PRIMARY KEY,
    name  text NOT NULL,
    email text NOT NULL);
INSERT INTO large_user (name, email)
SELECT 'user ' || g, 'User.' || g || CASE WHEN g % 7 = 0 THEN '@Example.COM' ELSE '@example.org' END
FROM generate_series(1, $rows) g;
ANALYZE large_user;
SQL
}

drop_database() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1
}

# "t"/"f" for large_user.COLUMN's NOT NULL, "missing" without the column.
not_null_flag() {
    local flag
    flag=$(q "SELECT attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = 'large_user'::regclass
              AND attname = '$1' AND NOT attisdropped")
    echo "${flag:-missing}"
}

check_constraints() {
    q "SELECT string_agg(conname || ': ' || pg_get_constraintdef(oid), '; ')
       FROM pg_catalog.pg_constraint WHERE conrelid = 'large_user'::regclass AND contype = 'c'"
}

null_counts() {
    q "SELECT count(*) FILTER (WHERE status IS NULL) || ' ' || count(*) FILTER (WHERE email_lower IS NULL)
       FROM large_user"
}

# Rows whose backfilled values are not what a plain UPDATE would write.
wrong_values() {
    q "SELECT count(*) FROM large_user
       WHERE status IS DISTINCT FROM 'active' OR email_lower IS DISTINCT FROM lower(email)"
}

# How many transactions wrote large_user's rows (each batch commits alone).
writing_transactions() {
    q "SELECT count(DISTINCT xmin::text) FROM large_user"
}

# run_migration_under_traffic LABEL LOG COMMAND...: migration_under_traffic.py
run_migration_under_traffic() {
    local label=$1 log=$2
    shift 2
    "$PYTHON" "$FRAMEWORK_LIB/migration_under_traffic.py" --label "$label" --log "$log" -- "$@"
}

# The extension's NOTICEs reached the migration's output: the summary of
# each backfill and progress lines.
check_notices_in() {
    local log=$1 label=$2
    local progress
    progress=$(grep -cE 'NOTICE: +safe_backfill: .*large_user.*: batch [0-9]+' "$log")
    ok "$label: the extension's progress NOTICEs ($progress lines) and summaries reach the migration's output" \
        test "$progress" -ge 2 -a \
        "$(grep -cE 'NOTICE: +safe_backfill: .*large_user.*(status|email_lower).*: filled [0-9]+ rows' "$log")" -ge 2 -a \
        "$(grep -cE 'NOTICE: +safe_set_not_null: ' "$log")" -ge 2 || diag_tail "$log" 30
}

# The detached flow (the two-deploy pattern) of each framework: migration A
# adds detached_user.tier and queues its backfill as a detached run inside
# the framework's migration transaction; migration B waits for it and makes
# tier NOT NULL.  detached_user counts the writes of each row (writes, set
# by a trigger), so "written once" is a fact of the table.
setup_detached_table() {
    local rows=$1
    psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE detached_user (
    id     bigserial PRIMARY KEY,
    name   text NOT NULL,
    writes integer NOT NULL DEFAULT 0);
CREATE FUNCTION detached_user_count_write() RETURNS trigger LANGUAGE plpgsql
    AS \$\$ BEGIN NEW.writes := OLD.writes + 1; RETURN NEW; END \$\$;
CREATE TRIGGER detached_user_count_write BEFORE UPDATE ON detached_user
    FOR EACH ROW EXECUTE FUNCTION detached_user_count_write();
INSERT INTO detached_user (name) SELECT 'user ' || g FROM generate_series(1, $rows) g;
ANALYZE detached_user;
SQL
}

# check_detached_flow LABEL LOG_A ROWS BATCH: after migrations A and B.
check_detached_flow() {
    local label=$1 log=$2 rows=$3 batch=$4
    ok "$label: migration A queued a detached run inside its transaction and returned" \
        grep -qE 'detached run [0-9]+ queued' "$log" || diag_tail "$log" 20
    is "$label: detached_user.tier: every row filled with 'basic', NOT NULL, no helper CHECK left" \
        "$(q "SELECT count(*) FILTER (WHERE tier IS DISTINCT FROM 'basic') || ' ' || count(*) FROM detached_user")
$(q "SELECT attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = 'detached_user'::regclass AND attname = 'tier'")
$(q "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conrelid = 'detached_user'::regclass AND contype = 'c'")" \
        "0 $rows
t
0"
    is "$label: every row of detached_user was written once (a trigger counts the writes)" \
        "$(q "SELECT min(writes) || ' ' || max(writes) FROM detached_user")" "1 1"
    local transactions
    transactions=$(q "SELECT count(DISTINCT xmin::text) FROM detached_user")
    ok "$label: detached_user was filled in $transactions transactions (>= $rows rows / $batch per batch)" \
        test "$transactions" -ge $((rows / batch))
    is "$label: the run is in safe_backfill_progress as detached and done, found by safe_backfill_detached_run" \
        "$(q "SELECT p.detached || ' ' || p.state || ' ' || p.rows_done FROM safe_backfill_progress p
              WHERE p.id = safe_backfill_detached_run('detached_user', 'tier')")" "true done $rows"
}

# safe_update / safe_delete (each framework's "change" migrations A and B,
# the same changes written with its own expressions) on change_user:
#   A: SET price_cents = (price * 100)::int WHERE price_cents IS DISTINCT FROM (price * 100)::int;
#      DELETE WHERE kind = 'spam' AND price > 10
#   B: SET currency = 'EUR', note = 'it''s 100% \ ok' WHERE currency = 'eur'
#      (reversed, where the framework says so, by SET currency = 'eur',
#      note = NULL WHERE note = 'it''s 100% \ ok': note is NULL before B)
# change_user_orig is the table as seeded; change_user_a and change_user_ab
# are copies with the plain statements of A, and of A then B, applied.
setup_change_table() {
    psql -X -q -v ON_ERROR_STOP=1 -v rows="$1" >/dev/null <<'SQL'
CREATE TABLE change_user (
    id          bigserial PRIMARY KEY,
    currency    text NOT NULL,
    price       numeric(10,2) NOT NULL,
    price_cents integer,
    kind        text NOT NULL,
    note        text);
INSERT INTO change_user (currency, price, price_cents, kind)
SELECT CASE g % 3 WHEN 0 THEN 'eur' WHEN 1 THEN 'EUR' ELSE 'usd' END,
       (g % 1000) / 7.0,
       CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN 0 ELSE round((g % 1000) / 7.0, 2) * 100 END,
       CASE WHEN g % 6 = 0 THEN 'spam' ELSE 'user' END
FROM generate_series(1, :rows) g;
ANALYZE change_user;
CREATE TABLE change_user_orig AS TABLE change_user;
CREATE TABLE change_user_a AS TABLE change_user;
UPDATE change_user_a SET price_cents = (price * 100)::int
WHERE price_cents IS DISTINCT FROM (price * 100)::int;
DELETE FROM change_user_a WHERE kind = 'spam' AND price > 10;
CREATE TABLE change_user_ab AS TABLE change_user_a;
UPDATE change_user_ab SET currency = 'EUR', note = 'it''s 100% \ ok' WHERE currency = 'eur';
SQL
}

# Rows that are in change_user or in TABLE but not in both (duplicates counted).
change_user_differences() {
    q "SELECT count(*) FROM ((TABLE change_user EXCEPT ALL TABLE $1)
                             UNION ALL (TABLE $1 EXCEPT ALL TABLE change_user)) d"
}

# The runs on change_user in safe_backfill_progress, oldest first, from the
# LIMIT-th latest: "update done, delete done", with "(N batches)" when fewer
# than MIN_BATCHES.
change_runs() {
    local latest=$1 min_batches=$2
    q "SELECT string_agg(operation || ' ' || state
                         || CASE WHEN batches < $min_batches THEN ' (' || batches || ' batches)' ELSE '' END,
                         ', ' ORDER BY id)
       FROM (SELECT * FROM safe_backfill_progress WHERE table_name = 'public.change_user'
             ORDER BY id DESC LIMIT $latest) r"
}

# check_change_migrations LABEL LOG ROWS BATCH: after migrations A and B
# ran (LOG: their output).
check_change_migrations() {
    local label=$1 log=$2 rows=$3 batch=$4
    is "$label: change_user is what the plain UPDATEs and DELETE give on a copy (rows differing; the copy differs from the seed)" \
        "$(change_user_differences change_user_ab) $(q 'SELECT count(*) > 0 FROM ((TABLE change_user_ab EXCEPT ALL TABLE change_user_orig) UNION ALL (TABLE change_user_orig EXCEPT ALL TABLE change_user_ab)) d')" \
        "0 t"
    # (half: the delete leaves fewer rows, and fewer batches, to the last update)
    is "$label: the three runs are recorded as done, each in several batches (at least $((rows / batch / 2)))" \
        "$(change_runs 3 $((rows / batch / 2)))" "update done, delete done, update done"
    ok "$label: the summaries of safe_update and safe_delete reach the migration's output" \
        test "$(grep -cE 'NOTICE: +safe_update: change_user: updated [1-9][0-9]* rows' "$log")" -eq 2 -a \
        "$(grep -cE 'NOTICE: +safe_delete: change_user: deleted [1-9][0-9]* rows' "$log")" -eq 1 ||
        diag_tail "$log" 30
}

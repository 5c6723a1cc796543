#!/usr/bin/env bash
# HOT rounds on a partitioned table walked by key (issue 23): a Pagila-like
# payment table, partitioned by month into LEAVES leaves, ROWS rows, primary
# key (payment_date, payment_id), indexes on customer_id, staff_id and
# rental_id, full pages; its rows stored as Pagila stores them (by customer,
# then date: a month's rows are spread over its leaf).  Fills a new column
# with one UPDATE, and with safe_backfill (serial, 2 workers), interleaved,
# ROUNDS times, on a fresh copy each time; prints time, HOT share, heap and
# index growth (all leaves).  Uses the cluster named by PGHOST/PGPORT.
#   bench/hot_partitioned.sh [ROWS] [ROUNDS] [CASES]     CASES: update serial w2 ctid serial1k
#   KEY="payment_id, payment_date": a key that does not start with the
#   partition key (its rounds could not leave out the other leaves: no rounds)
set -eu
ROWS=${1:-200000}
ROUNDS=${2:-3}
CASES=${3:-"update serial w2"}
LEAVES=55
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

setup() {
    $PSQL <<SQL
CREATE EXTENSION IF NOT EXISTS safe_backfill;
DROP TABLE IF EXISTS payment;
CREATE TABLE payment (
    payment_id bigint NOT NULL,
    customer_id int NOT NULL,
    staff_id int NOT NULL,
    rental_id int NOT NULL,
    amount numeric(5,2) NOT NULL,
    payment_date timestamptz NOT NULL,
    PRIMARY KEY (${KEY:-payment_date, payment_id})
) PARTITION BY RANGE (payment_date);
DO \$\$
DECLARE m date;
BEGIN
  FOR i IN 0 .. $LEAVES - 1 LOOP
    m := date '2020-01-01' + make_interval(months => i);
    EXECUTE format('CREATE TABLE %I PARTITION OF payment FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 100, autovacuum_enabled = off)',
                   'payment_p' || to_char(m, 'YYYY_MM'), m, m + interval '1 month');
  END LOOP;
END \$\$;
INSERT INTO payment
SELECT row_number() OVER (ORDER BY c, d), c, 1 + (c % 2), (c * 7919 + g) % 100000, (g % 1000) / 100.0, d
FROM (SELECT g, 1 + g % 600 AS c,
             timestamptz '2020-01-01' + (random() * (date '2020-01-01' + $LEAVES * interval '1 month' - timestamptz '2020-01-01')) AS d
      FROM generate_series(1, $ROWS) g) s
ORDER BY c, d;
CREATE INDEX ON payment (customer_id);
CREATE INDEX ON payment (staff_id);
CREATE INDEX ON payment (rental_id);
ALTER TABLE payment ADD COLUMN status text;
VACUUM ANALYZE payment;
SQL
}

sizes() {
    $PSQL -c "SELECT sum(pg_relation_size(relid)) || ' ' || sum(pg_indexes_size(relid)) || ' ' || sum(coalesce(n_tup_hot_upd, 0))
              FROM pg_partition_tree('payment') p LEFT JOIN pg_stat_user_tables s USING (relid) WHERE p.isleaf"
}

run_case() {
    local before after t0 t1
    setup
    before=$(sizes)
    t0=$(date +%s.%N)
    case $1 in
        update) $PSQL -c "UPDATE payment SET status = 'paid' WHERE status IS NULL" ;;
        serial) $PSQL -c "CALL safe_backfill('payment', 'status', 'paid')" ;;
        serial1k) $PSQL -c "SET safe_backfill.target_batch_ms = 0" -c "CALL safe_backfill('payment', 'status', 'paid', ${BATCH:-1000})" ;;
        w2) $PSQL -c "CALL safe_backfill('payment', 'status', 'paid', workers => 2)" ;;
        ctid) $PSQL -c "SET safe_backfill.iteration = ctid" -c "CALL safe_backfill('payment', 'status', 'paid')" ;;
    esac
    t1=$(date +%s.%N)
    $PSQL -c "SELECT pg_stat_force_next_flush()" >/dev/null
    sleep 0.3
    after=$(sizes)
    set -- $before $after
    printf '%-7s %7.2fs  hot %5.1f%%  heap x%.2f  indexes x%.2f  load %s\n' "$c" \
        "$(echo "$t1 - $t0" | bc)" "$(echo "100 * ($6 - $3) / $ROWS" | bc -l)" \
        "$(echo "$4 / $1" | bc -l)" "$(echo "$5 / $2" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
}

for r in $(seq "$ROUNDS"); do
    for c in $CASES; do run_case "$c"; done
done

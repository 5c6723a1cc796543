# Throwaway PostgreSQL cluster helpers, sourced by run-tests.sh, demo.sh and bench/run.
# cluster_start DIR PORT: initdb into DIR (as the postgres OS user when root),
# listen only on a socket in DIR, and export PGHOST/PGPORT/PGUSER for clients.

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}

# Run a command as the postgres OS user when we are root.  From a directory
# postgres may not enter (root's home) PostgreSQL's programs would warn
# 'could not change directory to "/root/...": Permission denied': start
# those from / (every path we pass is absolute).
as_pg_owner() {
    if [ "$(id -u)" != 0 ]; then
        "$@"
    elif runuser -u postgres -- test -x "$(pwd -P)" 2>/dev/null; then
        runuser -u postgres -- "$@"
    else
        (cd / && runuser -u postgres -- "$@")
    fi
}

cluster_start() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_pg_owner "$PG_BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust \
        --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log"; return 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_prepared_transactions = 4
log_min_messages = warning
CONF
    for setting in "$@"; do echo "$setting" >>"$dir/data/postgresql.conf"; done
    as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
        cat "$dir/server.log"; return 1; }
    export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
}

cluster_stop() {
    local dir=$1
    [ -d "$dir/data" ] && as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
    return 0
}

# A free TCP port number for the cluster (the socket file name uses it).
free_port() {
    local port
    for port in $(seq "${1:-54320}" 65000); do
        if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$port" ]; then
            echo "$port"; return 0
        fi
    done
    return 1
}

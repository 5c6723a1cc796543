# Installing the extension safely when several runs share one PostgreSQL
# installation (sourced by test/run-tests.sh and bench/lib.sh).
#
# install_built_extension SRC_DIR: "make install" of the extension already
# built in SRC_DIR into PG_CONFIG's installation, one install at a time.  Two
# "make install" started at the same moment race inside /usr/bin/install,
# which removes a file and creates it again: the other one's copy appears in
# between and one of them fails with "cannot create regular file
# '.../bitcode/safe_backfill/src/not_null_native.bc': File exists".  So every
# install holds an exclusive flock on the installation's pkglibdir itself: the
# lock belongs to what is written (runs with different TMPDIRs or checkouts
# still meet), and no lock file is left anywhere.
install_built_extension() {
    local src=$1 pkglibdir
    pkglibdir=$("${PG_CONFIG:-pg_config}" --pkglibdir) || return 1
    [ -d "$pkglibdir" ] || { echo "no directory $pkglibdir (PG_CONFIG's --pkglibdir)" >&2; return 1; }
    # -w: a run killed while installing holds nothing (the lock goes with its
    # process); a minute is far more than an install takes.
    flock -w 60 "$pkglibdir" make -C "$src" -s PG_CONFIG="${PG_CONFIG:-pg_config}" install
}

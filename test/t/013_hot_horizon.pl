# HOT rounds and the horizon (issue 23).  Between two rounds a batch's pages
# are pruned, after waiting until no snapshot can still see the versions the
# round left dead.  That wait asks the table's own horizon, the one pruning
# uses: a REPEATABLE READ transaction left open in ANOTHER database of the
# cluster (an idle admin or analytics session) holds nothing back, and serial
# and parallel runs keep their HOT updates and small indexes.  Before, the
# wait asked the shared horizon, which counts every database: with 2 workers
# each wait timed out, the rounds' rows moved, 40% of updates were HOT and
# the indexes grew x1.8.  A transaction of the SAME database does hold
# pruning back, legitimately: the run says so once, naming its pid, as
# VACUUM VERBOSE would.
#
# Facts asserted: the HOT update count and the index sizes; the NOTICE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $rows = 20000;
my $node = PostgreSQL::Test::Cluster->new('hot_horizon');
$node->init;
# autovacuum's own snapshots would come and go in the middle of the runs
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE index_sizes (tbl text PRIMARY KEY, before bigint);
	-- full pages (fillfactor 100), two secondary indexes built on the full table
	CREATE FUNCTION hot_seed(name text) RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
	  EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, name text, code int) WITH (fillfactor = 100)', name);
	  EXECUTE format('INSERT INTO %I SELECT g, ''name '' || g, g * 7 FROM generate_series(1, $rows) g', name);
	  EXECUTE format('CREATE INDEX ON %I (name)', name);
	  EXECUTE format('CREATE INDEX ON %I (code)', name);
	  EXECUTE format('ALTER TABLE %I ADD COLUMN status text', name);
	  INSERT INTO index_sizes VALUES (name, pg_indexes_size(name::regclass));
	END \$\$;
	SELECT hot_seed('serial_other'), hot_seed('workers_other'), hot_seed('serial_same');
});
$node->safe_psql('postgres', 'VACUUM ANALYZE serial_other, workers_other, serial_same');

# A session that opens a REPEATABLE READ transaction in $db, takes its
# snapshot and stays idle in it until release_snapshot().
sub hold_snapshot
{
	my ($db) = @_;
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db) ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	$s{in} .= "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
	  . "SELECT 'pid=' || pg_backend_pid() FROM pg_class LIMIT 1;\n";
	$s{h}->pump until $s{out} =~ /pid=(\d+)/ || !$s{h}->pumpable;
	($s{pid}) = $s{out} =~ /pid=(\d+)/ or die "the snapshot holder did not start: $s{err}";
	$node->poll_query_until('postgres',
		"SELECT backend_xmin IS NOT NULL AND state = 'idle in transaction' FROM pg_stat_activity WHERE pid = $s{pid}")
	  or die 'the snapshot holder holds no snapshot';
	return \%s;
}

sub release_snapshot
{
	my ($s) = @_;
	$s->{in} .= "COMMIT;\n\\q\n";
	$s->{h}->finish;
}

# The run's HOT updates, once the statistics of every session that ran it
# (the caller, its workers) have arrived.
sub hot_updates
{
	my ($tbl) = @_;
	$node->poll_query_until('postgres',
		"SELECT n_tup_upd >= $rows FROM pg_stat_user_tables WHERE relname = '$tbl'")
	  or die "the statistics of the updates of $tbl did not arrive";
	return $node->safe_psql('postgres',
		"SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = '$tbl'");
}

sub index_growth
{
	my ($tbl) = @_;
	return $node->safe_psql('postgres',
		"SELECT round(pg_indexes_size('$tbl'::regclass)::numeric / before, 2) FROM index_sizes WHERE tbl = '$tbl'");
}

sub backfill
{
	my ($tbl, $workers) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres',
		"SET safe_backfill.progress_interval = 0; SET safe_backfill.target_batch_ms = 0;"
		  . " CALL safe_backfill('$tbl', 'status', 'active', 1000, workers => $workers)",
		stdout => \$out, stderr => \$err, on_error_die => 1);
	is($node->safe_psql('postgres', "SELECT count(*) FROM $tbl WHERE status IS NULL"), '0',
		"$tbl: every row filled");
	return $err;
}

# --- a snapshot open in another database: nothing held back ---------------------
my $elsewhere = hold_snapshot('other');

backfill('serial_other', 1);
my $hot = hot_updates('serial_other');
cmp_ok($hot, '>=', $rows * 0.6, "serial: most updates HOT ($hot of $rows)");
cmp_ok(index_growth('serial_other'), '<=', 1.10, 'serial: indexes grew at most 10%');

# Each worker waits before pruning between rounds until the other's statements
# have moved past its round's commit: on the shared horizon the other
# database's snapshot made every such wait time out (40% HOT, indexes x1.82).
backfill('workers_other', 2);
$hot = hot_updates('workers_other');
cmp_ok($hot, '>=', $rows * 0.6, "2 workers: most updates HOT ($hot of $rows)");
cmp_ok(index_growth('workers_other'), '<=', 1.10, '2 workers: indexes grew at most 10%');

release_snapshot($elsewhere);

# --- a snapshot open in the same database: said, once, with its pid -------------
my $here = hold_snapshot('postgres');
my $err = backfill('serial_same', 1);
my @said = $err =~ /NOTICE:  safe_backfill: serial_same\.status: the pages rewritten cannot be pruned while (pid \d+ \([^)]*\))/g;
is(scalar(@said), 1, 'a transaction of the same database holding pruning back is said once')
  or diag($err);
like($said[0] // '', qr/^pid $here->{pid} \(idle in transaction, transaction open \d+\.\d s\)$/,
	'naming its pid, its state and how long it has been open');
like($err, qr/HINT:  End that transaction \(COMMIT, ROLLBACK or pg_terminate_backend\($here->{pid}\)\)/,
	'and how to end it');
release_snapshot($here);

$node->stop;
done_testing();

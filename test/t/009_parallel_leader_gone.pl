# Parallel workers die with the caller.  The caller's progress moves while
# its workers fill; when the caller is terminated (pg_terminate_backend) its
# workers stop, the column's lock stays held until the last of them has
# exited, nothing is written after that, and a re-run writes every remaining
# row exactly once (a trigger counts the committed writes).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('leader_gone');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, 20000);
	CREATE TABLE writes (id int, status text);
	CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO writes VALUES (NEW.id, NEW.status);
		RETURN NEW;
	END $$;
	CREATE TRIGGER count_write AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION count_write();
});

my $workers = q{(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'safe_backfill worker')};
my $leader = q{(SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND query LIKE 'CALL safe_backfill(%')};
# the run's column lock: the only advisory lock taken in ExclusiveLock mode and kept
my $column_locked = q{(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted)};

my %run = (out => '', err => '');
$run{h} = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', "CALL safe_backfill('t', 'status', 'a', 200, pause_ms => 100, workers => 2)" ],
	'>', \$run{out}, '2>', \$run{err});
$node->poll_query_until('postgres', "SELECT $workers = 2") or die 'workers never started';

# --- progress moves while the workers fill -----------------------------------------
ok($node->poll_query_until('postgres', q{
	SELECT rows_done > 0 AND percent > 0 FROM safe_backfill_progress
	WHERE table_name = 'public.t' AND state = 'running'}),
	'rows_done and percent move during the parallel pass');
is($node->safe_psql('postgres', "SELECT $workers"), '2', 'while both workers still run');

# --- the leader terminated -----------------------------------------------------------
$node->poll_query_until('postgres', q{SELECT count(*) >= 1000 FROM t WHERE status = 'a'})
  or die 'no progress';
my $pid = $node->safe_psql('postgres', "SELECT $leader");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");

# Until the workers are gone, the column must stay locked: look as often as we can.
my ($looks, $unlocked_while_writing) = (0, 0);
while (1)
{
	my ($locked, $running) = split /\|/,
	  $node->safe_psql('postgres', "SELECT $column_locked, $workers");
	$looks++;
	$unlocked_while_writing++ if $locked == 0 && $running > 0;
	last if $running == 0 && $locked == 0;
	die 'the workers never stopped' if $looks > 20000;
}
$run{h}->finish;
is($unlocked_while_writing, 0,
	"the column lock was held as long as a worker ran ($looks looks)");
like($run{err}, qr/terminating connection due to administrator command/, 'the caller was terminated');

my $kept = $node->safe_psql('postgres', q{SELECT count(*) FROM t WHERE status = 'a'});
cmp_ok($kept, '<', 20000, "the run was stopped midway ($kept rows kept)");
sleep 1;
is($node->safe_psql('postgres', q{SELECT count(*) FROM t WHERE status = 'a'}), $kept,
	'no row changed 1 s after the workers were gone');
is($node->safe_psql('postgres', q{SELECT count(*) FROM writes}), $kept,
	'every write committed before the stop is a filled row');

# --- a re-run finishes, every row written exactly once -------------------------------------
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET safe_backfill.progress_interval = 0; CALL safe_backfill('t', 'status', 'b', 500, workers => 2)");
is($ret, 0, 're-run completes') or diag $stderr;
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '0', 'every row filled');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM writes'), '20000|20000',
	'every row was written exactly once');
is($node->safe_psql('postgres', q{SELECT count(*) FROM writes WHERE status = 'a'}), $kept,
	'by the stopped run or by the re-run, never both');

# --- a worker that cannot even connect -------------------------------------------------------
# Workers connect as the role that logged in; one that may no longer log in
# makes every worker fail before its first range.  The caller raises the
# worker's own error and SQLSTATE, and writes nothing.
$node->safe_psql('postgres', q{
	CREATE ROLE regress_app LOGIN SUPERUSER;
	UPDATE t SET status = NULL WHERE id <= 100;
});
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	\set VERBOSITY verbose
	ALTER ROLE regress_app NOLOGIN;
	SET safe_backfill.progress_interval = 0;
	CALL safe_backfill('t', 'status', 'c', 500, workers => 2);
}, extra_params => [ '-U', 'regress_app' ]);
isnt($ret, 0, 'a worker that cannot connect fails the call');
like($stderr, qr/ERROR:  28000: role "regress_app" is not permitted to log in/,
	"with the worker's error and SQLSTATE");
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '100',
	'and nothing written');

$node->stop;
done_testing();

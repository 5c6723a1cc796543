# Parallel workers: a worker killed mid-run stops the leader with a clear
# error and nothing half-written, a re-run finishes; cancelling the leader
# stops every worker; too few worker slots run with what is there, none at
# all run in the caller's session.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('parallel');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, 20000);
});

my $workers_running = q{(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'safe_backfill worker')};

sub start_backfill
{
	my ($call) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'),
		  '-c', 'SET safe_backfill.progress_interval = 0',
		  '-c', 'SET safe_backfill.target_batch_ms = 0',
		  '-c', 'SET safe_backfill.batch_lock_timeout = 0', '-c', $call ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

# --- one worker killed --------------------------------------------------------------
# Each worker is held in the middle of its range (the key halves) by a gate
# holding those rows' locks, so the test acts while both are running.
my $gate = lock_rows($node, 't', 'id IN (5001, 15001)');
my $bf = start_backfill("CALL safe_backfill('t', 'status', 'x', 200, pause_ms => 100, workers => 2)");
wait_at_gate($gate, 2, q{backend_type = 'safe_backfill worker'});
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'safe_backfill worker' LIMIT 1});
release_gate($gate);    # the other worker finishes its batch, then stops
$bf->{h}->finish;
isnt($bf->{h}->result(0), 0, 'the leader fails when a worker is killed');
like($bf->{err}, qr/ERROR:  safe_backfill: t\.status: a parallel worker stopped before finishing its range/,
	'with an error that says so');
like($bf->{err}, qr/DETAIL:  \d+ rows were filled and committed; nothing is half-written\./,
	'and what was kept');
$node->poll_query_until("postgres", "SELECT $workers_running = 0") or die 'workers left behind';
pass('the other worker stopped too');
my $filled = $node->safe_psql('postgres', 'SELECT count(status) FROM t');
# each transaction (a batch, or one of its HOT rounds) commits its rows with
# their record in the range: nothing is half-written, nothing uncounted
is($node->safe_psql('postgres',
	q{SELECT sum(r.rows_done) FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id WHERE j.relid = 't'::regclass}),
	$filled, "only committed transactions' rows are filled, each counted by its range ($filled rows)");
$node->safe_psql('postgres', "CALL safe_backfill('t', 'status', 'x', 500, workers => 2)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '0',
	'a re-run finishes the job');

# --- the leader cancelled ----------------------------------------------------------------
$node->safe_psql('postgres', 'UPDATE t SET status = NULL');
$gate = lock_rows($node, 't', 'id IN (5001, 15001)');
$bf = start_backfill("CALL safe_backfill('t', 'status', 'y', 200, pause_ms => 100, workers => 2)");
wait_at_gate($gate, 2, q{backend_type = 'safe_backfill worker'});
$node->safe_psql('postgres',
	q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%CALL safe_backfill(%' AND backend_type = 'client backend' AND pid <> pg_backend_pid()});
release_gate($gate);    # the workers finish their batch, then stop
$bf->{h}->finish;
like($bf->{err}, qr/canceling statement due to user request/, 'the leader is cancelled');
is($node->safe_psql("postgres", "SELECT $workers_running"), "0", 'and no worker is left running');
my $kept = $node->safe_psql('postgres', q{SELECT count(*) FROM t WHERE status = 'y'});
cmp_ok($kept, '>=', 1000, "committed batches stay ($kept rows)");
# the leader returned after its workers stopped: nobody is left to write
is($node->safe_psql('postgres', q{SELECT count(*) FROM t WHERE status = 'y'}), $kept,
	'nothing is written after the cancel');

# --- too few worker slots ------------------------------------------------------------------
$node->append_conf('postgresql.conf', "max_worker_processes = 2\nmax_logical_replication_workers = 0");
$node->restart;
$node->safe_psql('postgres', 'UPDATE t SET status = NULL');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET safe_backfill.progress_interval = 0; CALL safe_backfill('t', 'status', 'z', 1000, workers => 4)");
is($ret, 0, 'runs with fewer workers') or diag $stderr;
like($stderr, qr/only [12] of 4 background workers could start \(max_worker_processes = 2\)/,
	'and says how many could start');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '0', 'every row filled');

$node->append_conf('postgresql.conf', "max_worker_processes = 0");
$node->restart;
$node->safe_psql('postgres', 'UPDATE t SET status = NULL');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET safe_backfill.progress_interval = 0; CALL safe_backfill('t', 'status', 'w', 1000, workers => 2)");
is($ret, 0, 'runs with no worker slot at all') or diag $stderr;
like($stderr, qr/no background worker slot is free \(max_worker_processes = 0\); running in this session/,
	'in the caller\'s session, saying so');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '0', 'every row filled');
# the ranges it had cut are gone (a resume is serial) and the job row counts
# the rows and batches of the serial pass
my ($batches) = $stderr =~ /DETAIL:  (\d+) batches including/;
is($node->safe_psql('postgres', q{
	SELECT j.rows_done = (SELECT count(*) FROM t) AND j.batches = } . ($batches // -1) . q{
	       AND NOT EXISTS (SELECT FROM safe_backfill_job_ranges r WHERE r.job_id = j.id)
	FROM safe_backfill_jobs j ORDER BY j.id DESC LIMIT 1}),
	't', 'the serial run\'s job row counts its rows and batches, with no ranges left');

$node->stop;
done_testing();

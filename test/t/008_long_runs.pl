# Long runs: memory stays flat however many batches a call runs, and the
# pause between batches holds no lock and no snapshot.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Time::HiRes qw(usleep);
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('long_runs');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION safe_backfill');

# A psql session kept open; run() sends SQL and waits for a marker line.
sub session
{
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=0', '-d', $node->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	return \%s;
}

sub run_in
{
	my ($s, $sql) = @_;
	my $marker = 'done_' . int(rand(1e9));
	$s->{in} .= "$sql\nSELECT '$marker';\n";
	$s->{h}->pump until $s->{out} =~ /$marker/;
}

# Poll a query until it returns what is expected (generous deadline).
sub wait_for
{
	my ($sql, $expected, $what) = @_;
	$node->poll_query_until('postgres', $sql, $expected)
	  or die "timed out waiting for $what";
}

# --- memory: 9,000 batches of one row --------------------------------------------
# A trigger holds the run at two rows (ids 500 and 9500) on advisory locks the
# test owns; at each stop the backend logs its memory contexts
# (pg_log_backend_memory_contexts) and we read its grand total from the log.
$node->safe_psql('postgres', q{
	CREATE TABLE mem (id int PRIMARY KEY, v int);
	INSERT INTO mem SELECT generate_series(1, 10000);
	ANALYZE mem;
	CREATE FUNCTION mem_gate() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.id IN (500, 9500) THEN
			PERFORM pg_advisory_xact_lock_shared(NEW.id);
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER mem_gate BEFORE UPDATE ON mem FOR EACH ROW EXECUTE FUNCTION mem_gate();
});
my $holder = session();
run_in($holder, 'SELECT pg_advisory_lock(500), pg_advisory_lock(9500);');

my $run = session();
$run->{in} .= q{
SET application_name = 'mem_run';
SET safe_backfill.progress_interval = 0;
SET safe_backfill.batch_lock_timeout = 0;
CALL safe_backfill('mem', 'v', 1, batch_size => 1, target_batch_ms => 0);
SELECT 'mem_run_finished';
};
$run->{h}->pump_nb;

sub memory_at_gate
{
	my ($key) = @_;
	wait_for(qq{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
	            AND objid = $key AND NOT granted}, '1', "the run to reach row $key");
	my $pid = $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE application_name = 'mem_run'});
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $total;
	for (1 .. 600)
	{
		my $log = slurp_file($node->logfile, $offset);
		($total) = $log =~ /\[$pid\].*Grand total: (\d+) bytes/;
		last if defined $total;
		usleep(100_000);
	}
	die "no memory context dump in the log" unless defined $total;
	my $batches = $node->safe_psql('postgres',
		q{SELECT batches FROM safe_backfill_jobs WHERE relid = 'mem'::regclass});
	run_in($holder, "SELECT pg_advisory_unlock($key);");
	return ($total, $batches);
}

my ($early, $early_batches) = memory_at_gate(500);
my ($late, $late_batches) = memory_at_gate(9500);
$run->{h}->pump until $run->{out} =~ /mem_run_finished/;
diag("backend memory: $early bytes at batch $early_batches, $late bytes at batch $late_batches");
cmp_ok($late_batches - $early_batches, '>=', 8900, 'the run went through about 9,000 batches between the two dumps');
cmp_ok($late - $early, '<', 256 * 1024,
	"memory does not grow with the batches ($early -> $late bytes over "
	  . ($late_batches - $early_batches) . ' batches)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM mem WHERE v IS NULL'), '0', 'every row was filled');

# --- the pause holds nothing --------------------------------------------------------
# A partitioned table walked by block ranges, with space reuse on (it opens
# every partition after each commit): while the run sleeps between batches,
# it holds no lock on the table or a partition and no snapshot, and DDL on a
# partition does not wait for it.
$node->safe_psql('postgres', q{
	CREATE TABLE parts (id int, v int) PARTITION BY RANGE (id);
	CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (5000);
	CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (5000) TO (10000);
	INSERT INTO parts SELECT g, NULL FROM generate_series(0, 9999) g;
	ANALYZE parts;
});
my $sleeper = session();
$sleeper->{in} .= q{
SET application_name = 'pause_run';
SET safe_backfill.progress_interval = 0;
CALL safe_backfill('parts', 'v', 1, batch_size => 100, pause_ms => 60000, target_batch_ms => 0);
SELECT 'pause_run_finished';
};
$sleeper->{h}->pump_nb;
wait_for(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pause_run'
           AND wait_event_type = 'Extension'}, '1', 'the run to sleep after its first batch');
my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE application_name = 'pause_run'});
is($node->safe_psql('postgres', qq{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	WHERE l.pid = $pid AND c.relname IN ('parts', 'parts_1', 'parts_2')}),
	'0', 'no lock on the table or its partitions while asleep');
is($node->safe_psql('postgres', "SELECT backend_xmin IS NULL FROM pg_stat_activity WHERE pid = $pid"),
	't', 'no snapshot while asleep (backend_xmin is NULL)');
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET lock_timeout = '5s';
	ALTER TABLE parts_2 ADD CONSTRAINT parts_2_id CHECK (id >= 5000);
});
is($ret, 0, 'ACCESS EXCLUSIVE DDL on a partition does not wait for the sleeping run') or diag $stderr;
is($node->safe_psql('postgres', qq{SELECT wait_event_type FROM pg_stat_activity WHERE pid = $pid}),
	'Extension', 'the run was still asleep then');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$sleeper->{h}->pump until $sleeper->{out} =~ /pause_run_finished/;
like($sleeper->{err}, qr/canceling statement due to user request/, 'the run ends on cancel');

$_->{in} .= "\\q\n", $_->{h}->finish for ($holder, $run, $sleeper);
$node->stop;
done_testing();

# safe_backfill.round_horizon_wait: a serial run that others run beside
# (a Citus node filling two shards at once sets it for each) waits after each
# HOT round for the snapshots older than the round, as parallel workers wait
# for each other, instead of pruning pages those snapshots still pin.  Off,
# it does not wait.
#
# A session holds a snapshot (REPEATABLE READ, in the same database) from
# before the run: the run is seen waiting in it; once that session commits,
# the run goes on and finishes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('round_horizon_wait');
$node->init;
$node->append_conf('postgresql.conf', 'autovacuum = off');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE rh (id int PRIMARY KEY, pad text, v int) WITH (fillfactor = 100);
	INSERT INTO rh SELECT g, repeat('x', 40) FROM generate_series(1, 4000) g;
	VACUUM ANALYZE rh;
});

# A session with a snapshot taken now, kept until snapshot_end.
sub snapshot_start
{
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	$s{in} .= "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT 'held ' || count(*) FROM rh;\n";
	$s{h}->pump until $s{out} =~ /^held \d+$/m || !$s{h}->pumpable;
	$s{out} =~ /^held/m or die "no snapshot taken: $s{err}";
	return \%s;
}

sub snapshot_end
{
	my ($s) = @_;
	$s->{in} .= "COMMIT;\n\\q\n";
	$s->{h}->finish;
}

sub start_backfill
{
	my ($wait) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'),
		  '-c', 'SET application_name = rh_fill',
		  '-c', "SET safe_backfill.round_horizon_wait = $wait",
		  '-c', 'SET safe_backfill.target_batch_ms = 0',
		  '-c', q{CALL safe_backfill('rh', 'v', 1, 1000)} ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

# Poll until the run sleeps in a wait of ours (wait_event_type Extension):
# 'waiting'; or until its psql has exited: 'done'.
sub seen_waiting_or_done
{
	my ($run) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		return 'waiting' if $node->safe_psql('postgres', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			WHERE application_name = 'rh_fill' AND wait_event_type = 'Extension'}) eq 't';
		return 'done' unless $run->{h}->pumpable;
		$run->{h}->pump_nb;
	}
	return 'timeout';
}

# --- on: waits for the older snapshot ---------------------------------------------
my $snap = snapshot_start();
my $bf = start_backfill('on');
is(seen_waiting_or_done($bf), 'waiting', 'with round_horizon_wait on, the run waits after a round for the older snapshot');
snapshot_end($snap);
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'and finishes once that snapshot is gone') or diag $bf->{err};
is($node->safe_psql('postgres', 'SELECT count(*) FROM rh WHERE v IS NULL'), '0', 'no NULL left');

# --- off (the default for a serial run): no wait --------------------------------------
$node->safe_psql('postgres', 'UPDATE rh SET v = NULL');
$node->safe_psql('postgres', 'VACUUM rh');
$snap = snapshot_start();
$bf = start_backfill('off');
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'with round_horizon_wait off, the run finishes while the snapshot is still held')
  or diag $bf->{err};
snapshot_end($snap);

$node->stop;
done_testing();

# Throttling on replica lag with a real streaming standby: with replay
# paused the backfill stops advancing and says what it waits for; when replay
# resumes it finishes and every row reaches the standby.  A standby that
# stays behind makes it give up after max_replica_wait, keeping its work.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, 20000);
});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');

my ($out, $err) = ('', '');
my $timer = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
my $bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $primary->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', "CALL safe_backfill('t', 'status', 'x', 100, pause_ms => 20, max_replica_lag => '300ms')" ],
	'>', \$out, '2>', \$err, $timer);
$bf->pump while $err !~ /waiting for standby/ && $bf->pumpable && !$timer->is_expired;
diag "backfill output so far: $err" unless $err =~ /waiting for standby/;
like($err,
	qr/NOTICE:  safe_backfill: t\.status: waiting for standby "standby" to catch up: \d+\.\d s behind, limit 0\.3 s/,
	'the backfill says which standby it waits for, how far behind, and the limit');

my $filled = $primary->safe_psql('postgres', 'SELECT count(status) FROM t');
cmp_ok($filled, '<', 20000, "it stopped before the end ($filled rows filled)");
# a second NOTICE comes a second after the first: it waited all that time
$bf->pump while ($err =~ s/waiting for standby/$&/g) < 2 && $bf->pumpable && !$timer->is_expired;
is($primary->safe_psql('postgres', 'SELECT count(status) FROM t'), $filled,
	'and does not advance while replay is paused');

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$bf->finish;
is($bf->result(0), 0, 'it finishes once replay resumes') or diag $err;
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is($standby->safe_psql('postgres', 'SELECT count(*) FILTER (WHERE status IS NULL), count(*) FROM t'),
	'0|20000', 'every row is filled on the standby too');

# A standby that stays behind: a bounded wait, then a clear error.  A gate
# (a session holding row 10001 FOR UPDATE) holds the run at its first batch
# with rows to fill; replay is paused only then, so that batch commits
# before the standby falls behind, whatever the timing.
$primary->safe_psql('postgres', 'UPDATE t SET status = NULL WHERE id > 10000');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $gate = lock_rows($primary, 't', 'id = 10001');
($out, $err) = ('', '');
$bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $primary->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', "SET safe_backfill.max_replica_wait = '2s'",
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', "CALL safe_backfill('t', 'status', 'y', 100, pause_ms => 20, max_replica_lag => '200ms')" ],
	'>', \$out, '2>', \$err);
wait_at_gate($gate);
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
release_gate($gate);
$bf->finish;
isnt($bf->result(0), 0, 'gives up when the standby stays behind');
like($err, qr/ERROR:  safe_backfill: t\.status: standby "standby" stayed more than 200 ms behind for \d+ s/,
	'with an error naming the standby');
like($err, qr/HINT:  Check the standby \(is replay paused\?/, 'and a hint to check it');
my $kept = $primary->safe_psql('postgres', q{SELECT count(*) FROM t WHERE status = 'y'});
cmp_ok($kept, '>', 0, "batches committed before it gave up are kept ($kept rows)");
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');

# Without pg_read_all_stats the positions are hidden: refuse up front.
$primary->safe_psql('postgres', q{
	CREATE ROLE lagless LOGIN;
	GRANT SELECT, UPDATE ON t TO lagless;
});
my ($ret, $stdout, $stderr) = $primary->psql('postgres',
	"CALL safe_backfill('t', 'status', 'z', max_replica_lag => '1s')",
	extra_params => [ '-U', 'lagless' ]);
like($stderr, qr/ERROR:  max_replica_lag needs the privileges of pg_read_all_stats/,
	'a role that cannot see standby positions is refused');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM t WHERE status = 'z'}), '0',
	'before any row changed');

$standby->stop;
$primary->stop;
done_testing();

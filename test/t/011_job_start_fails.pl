# A run that fails to start (its jobs-table statements time out, are
# cancelled) after it took the column's advisory lock must let go of the lock:
# it is a session lock, which no transaction abort releases.  Otherwise the
# session keeps the column until it disconnects and every other session's
# call ends in "is already being filled by another session".
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('job_start');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, 1000);
});

# A psql session that stays connected; run() sends SQL and waits for a marker.
sub session
{
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	return \%s;
}

my $marker = 0;
sub run
{
	my ($s, $sql) = @_;
	$marker++;
	$s->{out} = '';
	$s->{err} = '';
	$s->{in} .= "$sql\n\\echo done-$marker\n";
	$s->{h}->pump until $s->{out} =~ /^done-$marker$/m || !$s->{h}->pumpable;
	return $s->{err};
}

# The jobs table is locked: the call cannot read or record its run.
my $holder = session();
run($holder, 'BEGIN; LOCK TABLE safe_backfill_jobs IN ACCESS EXCLUSIVE MODE;');
my $caller = session();
my $err = run($caller, q{SET lock_timeout = '300ms'; CALL safe_backfill('t', 'status', 'done', 100);});
like($err, qr/ERROR:  canceling statement due to lock timeout/, 'the call fails on the locked jobs table');
like($err, qr/CONTEXT:  safe_backfill: t\.status: starting the run \(reading and recording it in safe_backfill_jobs\); no row was changed/,
	'and says that the run could not start');
run($holder, 'COMMIT;');
is($node->safe_psql('postgres', 'SELECT count(status) FROM t'), '0', 'no row was changed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM safe_backfill_jobs'), '0', 'no run was recorded');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21314}),
	'0', 'the column lock was released');

# another session may fill the column while the failed caller is still connected
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{CALL safe_backfill('t', 'status', 'done', 100)});
is($ret, 0, 'another session can run the backfill') or diag $stderr;
is($node->safe_psql('postgres', 'SELECT count(status) FROM t'), '1000', 'and it filled every row');

# and the session whose call failed can run it again, and leaves no lock behind
$node->safe_psql('postgres', 'UPDATE t SET status = NULL WHERE id <= 10');
$err = run($caller, q{RESET lock_timeout; CALL safe_backfill('t', 'status', 'done', 100);});
unlike($err, qr/ERROR/, 'the same session can run it again');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21314}),
	'0', 'and holds no column lock after it');
($ret, $stdout, $stderr) = $node->psql('postgres', q{CALL safe_backfill('t', 'status', 'done', 100)});
is($ret, 0, 'so a third call from another session runs too') or diag $stderr;

# a statement_timeout while the jobs table is busy: the same
run($holder, 'BEGIN; LOCK TABLE safe_backfill_jobs IN ACCESS EXCLUSIVE MODE;');
$err = run($caller, q{SET statement_timeout = '300ms'; CALL safe_backfill('t', 'status', 'done', 100);});
like($err, qr/ERROR:  canceling statement due to statement timeout/, 'a statement_timeout stops the start');
run($holder, 'COMMIT;');
($ret, $stdout, $stderr) = $node->psql('postgres', q{CALL safe_backfill('t', 'status', 'done', 100)});
is($ret, 0, 'and another session can run the backfill after it') or diag $stderr;

$holder->{in} .= "\\q\n";
$holder->{h}->finish;
$caller->{in} .= "\\q\n";
$caller->{h}->finish;
$node->stop;
done_testing();

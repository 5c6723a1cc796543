# safe_set_not_null waiting for a long transaction: the NOTICE names the
# session in the way, the attempts are bounded, the error says who held the
# lock, and once it is gone the promotion finishes and reports how long
# ACCESS EXCLUSIVE was held.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('waits');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g;
});

# A session that reads the table and keeps its transaction open.
my ($in, $out, $err) = ('', '', '');
my $holder = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$err);
$in .= "BEGIN;\nSELECT 'pid=' || pg_backend_pid();\nSELECT count(*) FROM t;\n";
$holder->pump until $out =~ /pid=(\d+)/ && $out =~ /^1000$/m;
my ($holder_pid) = $out =~ /pid=(\d+)/;

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"CALL safe_set_not_null('t', 'status', lock_timeout => '20ms', max_attempts => 3)");
isnt($ret, 0, 'gives up after max_attempts while the long transaction is open');
like($stderr,
	qr/NOTICE:  safe_set_not_null: t\.status: ADD CHECK NOT VALID waits for pid $holder_pid \(idle in transaction, transaction open \d+\.\d s\); attempt 1 of 3/,
	'each wait is reported with the pid in the way');
like($stderr,
	qr/ERROR:  safe_set_not_null: t\.status: could not get ACCESS EXCLUSIVE lock for ADD CHECK NOT VALID after 3 attempts/,
	'the error says which step could not get its lock');
like($stderr, qr/DETAIL:  Sessions holding locks on relation "t": pid $holder_pid /,
	'and names the session holding it');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_constraint WHERE conrelid = 't'::regclass}), '1',
	'nothing was added but the primary key');

# Release the lock while the next call is waiting: it proceeds.
my ($in2, $out2, $err2) = ('', '', '');
my $promote = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
	  "CALL safe_set_not_null('t', 'status', lock_timeout => '20ms', max_attempts => 1000)" ],
	'>', \$out2, '2>', \$err2);
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND pid <> $holder_pid AND locktype = 'virtualxid'")
  or die 'the promotion never waited for the holder';
$in .= "COMMIT;\n\\q\n";
$holder->finish;
$promote->finish;
is($promote->result(0), 0, 'finishes once the long transaction is gone') or diag $err2;
like($err2,
	qr/column is NOT NULL, proven by "t_status_not_null_safe_backfill" without a table scan, which was then dropped\nDETAIL:  ACCESS EXCLUSIVE held 3 times, \d+\.\d\d ms in total/,
	'reports how long ACCESS EXCLUSIVE was held');
is($node->safe_psql('postgres',
	q{SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'status'}),
	't', 'status is NOT NULL');

$node->stop;
done_testing();

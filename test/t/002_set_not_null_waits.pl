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

# From 18 on the column gets its own NOT NULL constraint, added NOT VALID and
# validated; before, a helper CHECK proves it and is dropped again.
my $native = $node->safe_psql('postgres', 'SHOW server_version_num') >= 180000;
my $first_step = $native ? 'ADD NOT NULL NOT VALID' : 'ADD CHECK NOT VALID';
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
	qr/NOTICE:  safe_set_not_null: t\.status: $first_step waits for pid $holder_pid \(idle in transaction, transaction open \d+\.\d s\); attempt 1 of 3/,
	'each wait is reported with the pid in the way');
like($stderr,
	qr/ERROR:  safe_set_not_null: t\.status: could not get ACCESS EXCLUSIVE lock for $first_step after 3 attempts/,
	'the error says which step could not get its lock');
like($stderr, qr/DETAIL:  Sessions holding locks on relation "t": pid $holder_pid /,
	'and names the session holding it');
# (18 also lists the primary key column's NOT NULL in pg_constraint)
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_constraint c JOIN pg_attribute a
	    ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
	  WHERE c.conrelid = 't'::regclass AND a.attname = 'status'}), '0',
	'no constraint was added on status');

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
	$native
	? qr/column is NOT NULL, constraint "t_status_not_null" validated without blocking reads or writes\nDETAIL:  VALIDATE took \d+\.\d ms under SHARE UPDATE EXCLUSIVE; ACCESS EXCLUSIVE held 1 time, \d+\.\d\d ms in total/
	: qr/column is NOT NULL, proven by "t_status_not_null_safe_backfill" without a table scan, which was then dropped\nDETAIL:  ACCESS EXCLUSIVE held 3 times, \d+\.\d\d ms in total/,
	'reports how long ACCESS EXCLUSIVE was held');
# attnotnull alone is not enough on 18: a NOT VALID constraint sets it too
is($node->safe_psql('postgres',
	q{SELECT a.attnotnull AND NOT EXISTS (SELECT FROM pg_constraint c
	    WHERE c.conrelid = a.attrelid AND a.attnum = ANY (c.conkey) AND NOT c.convalidated)
	  FROM pg_attribute a WHERE a.attrelid = 't'::regclass AND a.attname = 'status'}),
	't', 'status is NOT NULL, and no constraint on it is left NOT VALID');

$node->stop;
done_testing();

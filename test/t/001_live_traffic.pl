# safe_backfill under live traffic, cancel, progress and a column changed
# mid-run, on a throwaway cluster of its own.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('traffic');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION safe_backfill');

# Run statements in a psql of its own, in the background.  Each statement
# goes in its own -c: one query string with several statements would run as
# one transaction, where the procedure cannot commit.
sub start_psql
{
	my ($sql) = @_;
	my %run = (out => '', err => '');
	my @commands = map { ('-c', $_) } split /;\s*/, $sql;
	$run{h} = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), @commands ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

sub wait_for
{
	my ($query, $what) = @_;
	$node->poll_query_until('postgres', $query)
	  or die "timed out waiting for $what";
}

my $backfill_running = q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%CALL safe_backfill(%' AND pid <> pg_backend_pid()};

# --- random updates and inserts of NULL rows while the backfill runs -----------
$node->safe_psql('postgres', q{
	CREATE TABLE busy (id bigserial PRIMARY KEY, other int NOT NULL DEFAULT 0, status text);
	INSERT INTO busy (other) SELECT 0 FROM generate_series(1, 20000);
	CREATE TABLE busy_nokey (n bigint, other int NOT NULL DEFAULT 0, status text)
	  WITH (autovacuum_enabled = off);
	INSERT INTO busy_nokey (n) SELECT g FROM generate_series(1, 20000) g;
});

# The traffic never touches rows 9000 to 11000: the rows around the gate's
# row 10000, which the backfill's waiting batch may have locked already
# (otherwise the traffic would wait for the backfill, which waits for the
# gate, which waits for the traffic).  busy_nokey is not vacuumed, so no other
# row is moved into those pages.
my $script = "$PostgreSQL::Test::Utils::tmp_check/traffic.sql";
PostgreSQL::Test::Utils::append_to_file($script, q{
\set r random(1, 18000)
\set r case when :r >= 9000 then :r + 2001 else :r end
UPDATE busy SET other = other + 1 WHERE id = :r;
UPDATE busy_nokey SET other = other + 1 WHERE n = :r;
INSERT INTO busy (other) VALUES (1);
INSERT INTO busy_nokey (n) VALUES (20000 + :r);
UPDATE busy SET status = NULL WHERE id = :r;
});

for my $t ([ 'busy', 'id' ], [ 'busy_nokey', 'n' ])
{
	my ($table, $key) = @$t;
	# The backfill cannot finish before the traffic: it waits at row 10000
	# until the traffic is done.
	my $gate = lock_rows($node, $table, "$key = 10000");
	my $bf = start_psql(
		"SET safe_backfill.progress_interval = 0; SET safe_backfill.batch_lock_timeout = 0; "
		  . "CALL safe_backfill('$table', 'status', 'done', 200, pause_ms => 20)");
	wait_for("SELECT count(status) >= 1000 FROM $table", 'the first batches');

	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'pgbench', '-n', '-c', '2', '-t', '300', '-f', $script, '-d', $node->connstr('postgres') ],
		'>', \$out, '2>', \$err) or die "pgbench failed: $err";
	like($out, qr/number of transactions actually processed: 600/, "$table: traffic ran");

	# Every insert and update above committed while the backfill was running.
	wait_at_gate($gate);
	pass("$table: the traffic finished while the backfill was still running");
	release_gate($gate);

	$bf->{h}->finish;
	is($bf->{h}->result(0), 0, "$table: backfill succeeded") or diag $bf->{err};
	is($node->safe_psql('postgres', "SELECT count(*) FROM $table WHERE status IS NULL"),
		'0', "$table: no NULL left after concurrent updates and inserts");
}

# --- progress lines ---------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE progress (id int PRIMARY KEY, v text);
	INSERT INTO progress SELECT generate_series(1, 3000);
});
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET safe_backfill.progress_interval = 1; CALL safe_backfill('progress', 'v', 'x', 500, pause_ms => 5)");
is($ret, 0, 'progress run succeeded');
like($stderr,
	qr/NOTICE:  safe_backfill: progress\.v: batch \d+, \d+ of ~3000 rows \(\d+%\), \d+\.\d+ s\/batch, eta \d+ s/,
	'progress line shows batch, rows of the exact count of a never analyzed table, percent, time per batch and eta');
like($stderr, qr/NOTICE:  safe_backfill: progress\.v: filled 3000 rows\nDETAIL:  \d+ batches/,
	'summary with rows and batches');
my $progress_lines = () = $stderr =~ /batch \d+, \d+ of/g;
cmp_ok($progress_lines, '>=', 2, 'several progress lines at a 1 ms interval');

($ret, $stdout, $stderr) = $node->psql('postgres',
	"UPDATE progress SET v = NULL; SET safe_backfill.progress_interval = '1h'; CALL safe_backfill('progress', 'v', 'x', 500)");
unlike($stderr, qr/ of ~/, 'no progress line within the interval');

# --- cancel between batches: committed batches stay, a re-run finishes -----------
$node->safe_psql('postgres', q{
	CREATE TABLE cancelled (id int PRIMARY KEY, v text);
	INSERT INTO cancelled SELECT generate_series(1, 2000);
});
# pause_ms 60 s: the cancel comes while it sleeps after its first batch
my $bf = start_psql(
	"SET safe_backfill.progress_interval = 0; CALL safe_backfill('cancelled', 'v', 'x', 100, pause_ms => 60000)");
wait_for(q{SELECT count(v) >= 100 FROM cancelled}, 'a batch');
$node->safe_psql('postgres',
	q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%CALL safe_backfill(%' AND pid <> pg_backend_pid()});
$bf->{h}->finish;
isnt($bf->{h}->result(0), 0, 'cancelled backfill reports an error');
like($bf->{err}, qr/canceling statement due to user request/, 'the error is the cancel');
my $filled = $node->safe_psql('postgres', 'SELECT count(v) FROM cancelled');
ok($filled >= 100 && $filled < 2000 && $filled % 100 == 0,
	"whole committed batches stay after the cancel ($filled rows)");
$node->safe_psql('postgres', "CALL safe_backfill('cancelled', 'v', 'x', 100)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM cancelled WHERE v IS NULL'),
	'0', 're-running after a cancel finishes the job');

# --- the column changes under a running backfill ------------------------------------
# The change comes at a point the test controls: the backfill waits at a
# locked row, the DDL queues behind it, then the gate opens: the batch
# commits, the DDL runs, and the next batch finds the change.
sub change_under_backfill
{
	my ($table, $gate_where, $call, $ddl) = @_;
	my $gate = lock_rows($node, $table, $gate_where);
	my $bf = start_psql("SET safe_backfill.progress_interval = 0; SET safe_backfill.batch_lock_timeout = 0; $call");
	wait_at_gate($gate);
	my $change = start_psql($ddl);
	wait_for(qq{SELECT count(*) > 0 FROM pg_locks WHERE relation = '$table'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted},
		'the change to wait for its lock');
	release_gate($gate);
	$change->{h}->finish;
	is($change->{h}->result(0), 0, "$table: the change was made") or diag $change->{err};
	$bf->{h}->finish;
	return $bf;
}

$node->safe_psql('postgres', q{
	CREATE TABLE altered (id int PRIMARY KEY, v text);
	INSERT INTO altered SELECT generate_series(1, 2000);
});
$bf = change_under_backfill('altered', 'id = 1000',
	"CALL safe_backfill('altered', 'v', 'x', 100)",
	'ALTER TABLE altered RENAME COLUMN v TO w');
isnt($bf->{h}->result(0), 0, 'backfill stops when its column is renamed');
like($bf->{err},
	qr/column "v" of relation "altered" was dropped or renamed while safe_backfill was running/,
	'and says why');
# the gated row's batch (901-1000) runs in HOT rounds: the rounds before the
# rename are kept, row 1000's among them
is($node->safe_psql('postgres', q{SELECT count(w) FILTER (WHERE id <= 900), min(w) FILTER (WHERE id = 1000) FROM altered}),
	'900|x', 'batches committed before the rename are kept');

$bf = change_under_backfill('altered', 'id = 1500',
	"CALL safe_backfill('altered', 'w', '1', 100)",
	q{ALTER TABLE altered ALTER COLUMN w TYPE integer USING (CASE WHEN w = '1' THEN 1 END)});
like($bf->{err},
	qr/column "w" of relation "altered" changed while safe_backfill was running/,
	'a type change under a running backfill stops it');

$node->safe_psql('postgres', q{
	CREATE TABLE dropped (id int PRIMARY KEY, v text);
	INSERT INTO dropped SELECT generate_series(1, 2000);
});
$bf = change_under_backfill('dropped', 'id = 1000',
	"CALL safe_backfill('dropped', 'v', 'x', 100)", 'DROP TABLE dropped');
like($bf->{err}, qr/relation "dropped" was dropped while safe_backfill was running/,
	'a dropped table stops it with a clear error');

# --- rows keep arriving with NULL: bounded sweeps, then a clear error --------------
# (a trigger stands in for an application that writes NULL on every update)
$node->safe_psql('postgres', q{
	CREATE TABLE stubborn (id int PRIMARY KEY, v text);
	INSERT INTO stubborn SELECT generate_series(1, 50);
	CREATE FUNCTION renull() RETURNS trigger LANGUAGE plpgsql AS
	$$ BEGIN IF NEW.id = 1 THEN UPDATE stubborn SET v = NULL WHERE id = 2; END IF;
	          IF NEW.id = 2 THEN UPDATE stubborn SET v = NULL WHERE id = 1; END IF;
	          RETURN NULL; END $$;
	CREATE TRIGGER renull AFTER UPDATE OF v ON stubborn FOR EACH ROW
	  WHEN (NEW.v IS NOT NULL) EXECUTE FUNCTION renull();
});
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET safe_backfill.progress_interval = 0; CALL safe_backfill('stubborn', 'v', 'x', 10)");
isnt($ret, 0, 'a column that keeps getting NULL makes the backfill give up');
like($stderr, qr/rows with NULL keep appearing/, 'with a message saying so');
like($stderr, qr/HINT:  .*SET DEFAULT/, 'and a hint about a column default');

$node->stop;
done_testing();

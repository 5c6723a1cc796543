# What changes under a run with parallel workers, which isolation specs
# cannot pause (a worker's lock waits are invisible to isolationtester):
# (a) an application UPDATE moves a row to another partition while a
#     worker's batch waits for that row's lock: the batch fails with 40001
#     ("tuple to be locked was already moved to another partition"), is
#     retried like a lock timeout, and the run finishes with every row
#     filled exactly once;
# (b) row-level security starts to apply to the caller between two batches
#     of a worker: the run stops with an error saying so, recorded as
#     failed, instead of reporting done with the hidden rows still NULL.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('workers_midrun');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int, part int, status text, PRIMARY KEY (id, part)) PARTITION BY LIST (part);
	CREATE TABLE t_1 PARTITION OF t FOR VALUES IN (1);
	CREATE TABLE t_2 PARTITION OF t FOR VALUES IN (2);
	INSERT INTO t SELECT g, 1 FROM generate_series(1, 20000) g;
	CREATE TABLE writes (id int PRIMARY KEY, n int NOT NULL);
	CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  IF NEW.status IS DISTINCT FROM OLD.status THEN
	    INSERT INTO writes VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = writes.n + 1;
	  END IF;
	  RETURN NEW;
	END $$;
	CREATE TRIGGER count_write BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION count_write();
	GRANT INSERT, UPDATE ON writes TO PUBLIC;

	CREATE ROLE regress_filler;
	CREATE TABLE r (id int PRIMARY KEY, status text);
	INSERT INTO r SELECT generate_series(1, 20000);
	GRANT SELECT, UPDATE ON r TO regress_filler;
});

my $worker = q{backend_type = 'safe_backfill worker'};

sub start_backfill
{
	my ($call, $role) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'),
		  ($role ? ('-c', "SET ROLE $role") : ()),
		  '-c', 'SET client_min_messages = warning',
		  '-c', 'SET safe_backfill.progress_interval = 0',
		  '-c', 'SET safe_backfill.target_batch_ms = 0',
		  '-c', 'SET safe_backfill.batch_lock_timeout = 0', '-c', $call ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

# A session that runs $sql in an open transaction and waits for COMMIT.
sub open_transaction
{
	my ($sql) = @_;
	my %s = (in => '', out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	$s{in} .= "SELECT 'pid=' || pg_backend_pid();\nBEGIN;\n$sql;\nSELECT 'ran';\n";
	$s{h}->pump until $s{out} =~ /^pid=\d+$/m || !$s{h}->pumpable;
	($s{pid}) = $s{out} =~ /pid=(\d+)/;
	return \%s;
}

sub commit_transaction
{
	my ($s) = @_;
	$s->{in} .= "COMMIT;\n\\q\n";
	$s->{h}->finish;
	return $s->{err};
}

sub last_job
{
	my ($table) = @_;
	return $node->safe_psql('postgres',
		"SELECT state || ': ' || coalesce(error, '(no error)') FROM safe_backfill_jobs WHERE relid = '$table'::regclass ORDER BY id DESC LIMIT 1");
}

# --- (a) a row moved to another partition under a worker's batch -----------------
my $app = open_transaction('UPDATE t SET part = 2 WHERE id = 5001');
$app->{h}->pump until $app->{out} =~ /^ran$/m || !$app->{h}->pumpable;
my $bf = start_backfill("CALL safe_backfill('t', 'status', 'x', 1000, workers => 2)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE $worker AND $app->{pid} = ANY (pg_blocking_pids(pid))")
  or die 'no worker waited for the row being moved';
is(commit_transaction($app), '', 'the application moved the row while a worker waited for it');
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'the run finishes') or diag $bf->{err};
is($node->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE status IS NULL) || ' null, ' || (SELECT count(*) FROM writes) || ' rows written, at most ' || (SELECT max(n) FROM writes) || ' times, row 5001 in partition ' || (SELECT part FROM t WHERE id = 5001) FROM t}),
	'0 null, 20000 rows written, at most 1 times, row 5001 in partition 2',
	'every row filled exactly once, the moved one too');
is(last_job('t'), 'done: (no error)', 'the job is done');

# --- (b) row-level security enabled between two batches of a worker --------------
# the gate holds the first batch of the first range; the ALTER queues behind
# it (and the gate) and gets its lock when that batch commits
my $gate = lock_rows($node, 'r', 'id = 100');
$bf = start_backfill("CALL safe_backfill('r', 'status', 'x', 1000, workers => 2)", 'regress_filler');
wait_at_gate($gate, 1, $worker);
my $owner = open_transaction('ALTER TABLE r ENABLE ROW LEVEL SECURITY; CREATE POLICY evens ON r USING (id % 2 = 0)');
$node->poll_query_until('postgres',
	"SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $owner->{pid} AND relation = 'r'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted)")
  or die 'the ALTER TABLE did not queue for its lock';
release_gate($gate);
$owner->{h}->pump until $owner->{out} =~ /^ran$/m || !$owner->{h}->pumpable;
is(commit_transaction($owner), '', 'row-level security was enabled between two batches');
$bf->{h}->finish;
isnt($bf->{h}->result(0), 0, 'the run does not report success');
like($bf->{err}, qr/ERROR:  safe_backfill: r\.status: row-level security now applies to table "r"/,
	'it says row-level security now applies');
like(last_job('r'), qr/^failed: safe_backfill: r\.status: row-level security now applies to table "r"$/,
	'the job is recorded as failed, with the reason');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM r WHERE status IS NULL'), '>', 0,
	'rows are still NULL, as the job says');

$node->stop;
done_testing();

# The job row of a parallel run counts what was committed: rows_done and
# batches equal the rows filled and the batches of the summary after a normal
# end, and after a crash and a resume; the progress NOTICE never claims more
# rows than the table has.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('counters');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE fresh (id int PRIMARY KEY, status text);
	INSERT INTO fresh SELECT generate_series(1, 20000);
	CREATE TABLE crashed (id int PRIMARY KEY, status text);
	INSERT INTO crashed SELECT generate_series(1, 20000);
	CREATE TABLE shown (id int PRIMARY KEY, status text);
	INSERT INTO shown SELECT generate_series(1, 20000);
	ANALYZE fresh, crashed, shown;
});
my $settings = q{SET safe_backfill.progress_interval = 0; SET safe_backfill.target_batch_ms = 0;};

sub job_row
{
	my ($table) = @_;
	return $node->safe_psql('postgres',
		"SELECT rows_done || ' rows, ' || batches || ' batches' FROM safe_backfill_jobs WHERE table_name = 'public.$table'");
}

# --- a normal end ------------------------------------------------------------------
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"$settings CALL safe_backfill('fresh', 'status', 'done', 500, workers => 2)");
is($ret, 0, 'a parallel run') or diag $stderr;
my ($summary_batches) = $stderr =~ /DETAIL:  (\d+) batches including/;
ok(defined $summary_batches, "its summary counts $summary_batches batches");
is(job_row('fresh'), "20000 rows, $summary_batches batches",
	'the job row counts every row filled and every batch of the summary');

# --- a crash, then a resume -----------------------------------------------------------
# The leader records the workers' progress in the job row about once a
# second; here it cannot at all (a trigger makes that update wait for an
# advisory lock this test holds), as when the crash comes between two of its
# records.  The workers' ranges record their batches as they commit.
$node->safe_psql('postgres', q{
	CREATE FUNCTION hold_progress() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  IF OLD.phase = 'main' AND NEW.phase = 'main' AND NEW.rows_done <> OLD.rows_done THEN
	    PERFORM pg_catalog.pg_advisory_xact_lock(4242);
	  END IF;
	  RETURN NEW;
	END $$;
	CREATE TRIGGER hold_progress BEFORE UPDATE ON safe_backfill_jobs
	FOR EACH ROW EXECUTE FUNCTION hold_progress();
});
my %holder = (in => "SELECT pg_advisory_lock(4242);\n\\echo held\n", out => '');
$holder{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$holder{in}, '>', \$holder{out}, '2>', \my $holder_err);
$holder{h}->pump until $holder{out} =~ /held/;
# each worker is held in the middle of its range
my $gate = lock_rows($node, 'crashed', 'id IN (5001, 15001)');
my ($out, $err) = ('', '');
my $bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', 'SET safe_backfill.target_batch_ms = 0',
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', "CALL safe_backfill('crashed', 'status', 'done', 500, workers => 2)" ],
	'>', \$out, '2>', \$err);
wait_at_gate($gate, 2, q{backend_type = 'safe_backfill worker'});
my $worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'safe_backfill worker' LIMIT 1});
kill 'KILL', $worker;
$bf->finish;
$gate->{h}->finish;
$holder{h}->finish;
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart after the crash';
$node->safe_psql('postgres', 'DROP TRIGGER hold_progress ON safe_backfill_jobs');

my $filled = $node->safe_psql('postgres', 'SELECT count(status) FROM crashed');
cmp_ok($filled, '>', 0, "the workers filled $filled rows before the crash");
# each range counts the batches its worker committed, with their rows
my $committed = $node->safe_psql('postgres', q{
	SELECT sum(r.rows_done) || ' rows, ' || sum(r.batches) || ' batches'
	FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
	WHERE j.table_name = 'public.crashed'});
my ($batches_before) = $committed =~ /(\d+) batches/;
like($committed, qr/^$filled rows, \d+ batches$/, "the ranges hold the $filled rows and their batches ($committed)");
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET client_min_messages = notice; $settings CALL safe_backfill('crashed', 'status', 'done', 500, workers => 2)");
is($ret, 0, 'the parallel run resumes') or diag $stderr;
like($stderr, qr/resuming run \d+, 2 of its parallel ranges unfinished, each from where it stopped; $filled rows were filled before/,
	"the resume counts the $filled rows committed before the crash");
is($node->safe_psql('postgres', 'SELECT count(*) FROM crashed WHERE status IS NULL'), '0', 'every row is filled');
my ($resumed_batches) = $stderr =~ /DETAIL:  (\d+) batches including/;
# the batch the crash cut off was rolled back (but for its committed HOT
# rounds, whose rows are counted) and done again
is(job_row('crashed'), '20000 rows, ' . ($batches_before + $resumed_batches) . ' batches',
	"the job row counts every row, and the batches committed before the crash and the $resumed_batches of the resumed call");

# --- the progress NOTICE -------------------------------------------------------------
# With 9000-row batches the first range (1..10000) ends with a batch cut
# short at its end key, which the workers count as a whole batch scanned; the
# second worker is held in its second batch, so the leader reports while the
# ranges' counts add up to more than the table has.
$gate = lock_rows($node, 'shown', 'id = 20000');
($out, $err) = ('', '');
$bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', "SET safe_backfill.progress_interval = '1ms'",
	  '-c', 'SET safe_backfill.target_batch_ms = 0',
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', "CALL safe_backfill('shown', 'status', 'done', 9000, workers => 2)" ],
	'>', \$out, '2>', \$err);
# both ranges' first batches and the first range's second one: batch 3
$bf->pump until $err =~ /NOTICE:  safe_backfill: shown\.status: 2 workers, batch 3, / || !$bf->pumpable;
release_gate($gate);
$bf->finish;
my @lines = $err =~ /(2 workers, batch \d+, \d+ of ~\d+ rows[^\n]*)/g;
ok(scalar(@lines) > 0, 'the leader reported progress while a worker was held');
my @over = grep { /batch \d+, (\d+) of ~(\d+) rows/ && ($1 > 20000 || $2 > 20000) } @lines;
is(scalar(@over), 0, 'no progress line claims more than the 20000 rows of the table') or diag join("\n", @over);
is($node->safe_psql('postgres', 'SELECT count(*) FROM shown WHERE status IS NULL'), '0', 'and the run filled every row');

$node->stop;
done_testing();

# A backend killed in the middle of a backfill (the server goes through crash
# recovery): the jobs table says exactly how far the committed batches went,
# calling safe_backfill again resumes after the last committed key, and in
# the end every row was filled exactly once.  Batches and their HOT rounds
# commit asynchronously (the defaults): the crash loses the commits whose WAL
# was not written yet (wal_writer_delay is long here, so the last ones may
# still be in the WAL buffers), rows and job record together.  A batch is held
# inside one of its rounds, so the crash comes between rounds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\nwal_writer_delay = 10s");
$node->start;

# Wait until the server accepts connections again after a crash.  psql is
# refused during crash recovery and exits without reading its input, so a
# query written to it can hit a closed pipe ("ack Broken pipe: write( 14,
# 'SELECT 1' )": the test modules ignore SIGPIPE, IPC::Run dies).  Like
# upstream's crash tests (013_crash_restart.pl), poll with no query at all:
# nothing is written, and an empty result on stdout and stderr means psql
# connected.
sub wait_for_restart
{
	$node->poll_query_until('postgres', undef, '') or die 'no restart after the crash';
}
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, 20000);
	-- counts the committed updates of every row of every table it is on
	CREATE TABLE writes (tbl name, id int, n int NOT NULL, PRIMARY KEY (tbl, id));
	CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO writes VALUES (TG_TABLE_NAME, NEW.id, 1)
	  ON CONFLICT (tbl, id) DO UPDATE SET n = writes.n + 1;
	  RETURN NEW;
	END $$;
	CREATE TRIGGER count_write BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION count_write();
});

# The backfill is held at row 5001 (a gate holds its lock), so it is killed
# in the middle, however fast it runs.
my $gate = lock_rows($node, 't', 'id = 5001');
my ($out, $err) = ('', '');
my $bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', "CALL safe_backfill('t', 'status', 'done', 500, pause_ms => 100)" ],
	'>', \$out, '2>', \$err);
wait_at_gate($gate);
my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE query LIKE '%CALL safe_backfill(%' AND pid <> pg_backend_pid()});
like($pid, qr/^\d+$/, 'found the backend running the backfill');
is($node->safe_psql('postgres', q{SELECT query ~ 'safe_backfill: main pass, batch \d+, \d+ rows filled' FROM pg_stat_activity WHERE pid = } . $pid),
	't', 'pg_stat_activity shows where the backfill is');
kill 'KILL', $pid;
$bf->finish;
$gate->{h}->finish;    # its session ended with the crash
wait_for_restart();

my $filled = $node->safe_psql('postgres', 'SELECT count(status) FROM t');
is($node->safe_psql('postgres', 'SELECT rows_done FROM safe_backfill_jobs'), $filled,
	"after the crash the job records exactly the committed rows ($filled)");
is($node->safe_psql('postgres', 'SELECT state FROM safe_backfill_progress'), 'interrupted',
	'and the progress view calls the run interrupted');
my $last_key = $node->safe_psql('postgres', 'SELECT last_key[1] FROM safe_backfill_jobs');
is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE id <= $last_key AND status IS NULL"), '0',
	'every row up to its last key is filled');
# past it only the committed rounds of the batch the crash interrupted
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE id > $last_key + 500 AND status IS NOT NULL"),
	'==', 0, 'past it, nothing beyond the interrupted batch');

my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	CALL safe_backfill('t', 'status', 'done', 500);
});
is($ret, 0, 'the second call succeeds') or diag $stderr;
like($stderr, qr/resuming run 1 in its main pass, after key \($last_key\); $filled rows were filled before/,
	'it resumes after the last committed key');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '0', 'every row is filled');
is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 't'}), '20000|1|1',
	'every row was written exactly once');
is($node->safe_psql('postgres', 'SELECT state, rows_done FROM safe_backfill_progress'), 'done|20000',
	'the run is done and counted every row');

# --- the same with two parallel workers: every range resumes where it stopped ---------
$node->safe_psql('postgres', q{
	CREATE TABLE p (id int PRIMARY KEY, status text);
	INSERT INTO p SELECT generate_series(1, 20000);
	CREATE TRIGGER count_write BEFORE UPDATE ON p FOR EACH ROW EXECUTE FUNCTION count_write();
});
# each worker is held in the middle of its range (the key halves)
$gate = lock_rows($node, 'p', 'id IN (5001, 15001)');
$bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', "CALL safe_backfill('p', 'status', 'done', 500, pause_ms => 100, workers => 2)" ],
	'>', \$out, '2>', \$err);
wait_at_gate($gate, 2, q{backend_type = 'safe_backfill worker'});
my $worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'safe_backfill worker' LIMIT 1});
kill 'KILL', $worker;
$bf->finish;
$gate->{h}->finish;
wait_for_restart();

my $pfilled = $node->safe_psql('postgres', 'SELECT count(status) FROM p');
is($node->safe_psql('postgres',
	q{SELECT sum(r.rows_done) FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id WHERE j.table_name = 'public.p'}),
	$pfilled, "each range records exactly its committed rows ($pfilled in all)");
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	CALL safe_backfill('p', 'status', 'done', 500, workers => 2);
});
is($ret, 0, 'the parallel run resumes') or diag $stderr;
like($stderr, qr/resuming run \d+, 2 of its parallel ranges unfinished, each from where it stopped; \d+ rows were filled before/,
	'every range where it stopped');
is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 'p'}), '20000|1|1',
	'every row was written exactly once');
is($node->safe_psql('postgres',
	q{SELECT bool_and(done) FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id WHERE j.table_name = 'public.p'}),
	't', 'and every range is done');

# --- by ranges of heap blocks (no primary key), killed between two rounds -----------
$node->safe_psql('postgres', q{
	CREATE TABLE b (id int, status text) WITH (fillfactor = 100);
	INSERT INTO b SELECT generate_series(1, 20000);
	CREATE TRIGGER count_write BEFORE UPDATE ON b FOR EACH ROW EXECUTE FUNCTION count_write();
});
# row 3001's round waits at the gate; the rounds of its blocks before it committed
$gate = lock_rows($node, 'b', 'id = 3001');
$bf = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', 'SET safe_backfill.hot_rounds = 8',
	  '-c', "CALL safe_backfill('b', 'status', 'done', 500, pause_ms => 100)" ],
	'>', \$out, '2>', \$err);
wait_at_gate($gate);
$pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE query LIKE '%CALL safe_backfill(%' AND pid <> pg_backend_pid()});
kill 'KILL', $pid;
$bf->finish;
$gate->{h}->finish;
wait_for_restart();

my $bfilled = $node->safe_psql('postgres', 'SELECT count(status) FROM b');
is($node->safe_psql('postgres', q{SELECT rows_done FROM safe_backfill_jobs WHERE relid = 'b'::regclass}), $bfilled,
	"by block ranges: the job records exactly the committed rows ($bfilled), its rounds included");
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	CALL safe_backfill('b', 'status', 'done', 500);
});
is($ret, 0, 'the block-range run resumes') or diag $stderr;
like($stderr, qr/resuming run \d+ in its main pass, after block \d+; $bfilled rows were filled before/,
	'at the block where its last committed batch ended');
is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 'b'}), '20000|1|1',
	'every row was written exactly once');
is($node->safe_psql('postgres', q{SELECT state, rows_done FROM safe_backfill_progress WHERE table_name = 'public.b'}),
	'done|20000', 'the run is done and counted every row');

$node->stop;
done_testing();

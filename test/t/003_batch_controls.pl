# Per-batch controls: a batch that keeps timing out on a row lock gives up
# after max_batch_retries with a clear error (committed batches kept), and
# target_batch_ms shrinks batches that take too long.  The batch shapes
# counted here are those of one transaction per batch (hot_rounds = 1); the
# same retries with HOT rounds are at the end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('controls');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE locked (id int PRIMARY KEY, status text);
	INSERT INTO locked SELECT generate_series(1, 1000);
});

# --- a row lock that is never released ----------------------------------------------
my ($in, $out, $err) = ('', '', '');
my $holder = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$err);
$in .= "BEGIN;\nUPDATE locked SET id = id WHERE id = 350;\nSELECT 'locked';\n";
$holder->pump until $out =~ /locked/;

my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	SET safe_backfill.target_batch_ms = 0;
	SET safe_backfill.batch_lock_timeout = '50ms';
	SET safe_backfill.max_batch_retries = 2;
	SET safe_backfill.hot_rounds = 1;
	CALL safe_backfill('locked', 'status', 'x', 100);
});
isnt($ret, 0, 'gives up when the row lock is never released');
like($stderr,
	qr/NOTICE:  safe_backfill: locked\.status: batch 4 waited more than 50 ms for a row lock and was rolled back; retrying with 50 rows in \d+ ms \(attempt 2 of 3\)/,
	'each timeout is reported with the smaller retry');
like($stderr,
	qr/ERROR:  safe_backfill: locked\.status: batch \d+ could not get its row locks after 3 attempts/,
	'the error names the batch and the attempts');
my ($kept) = $stderr =~ /DETAIL:  .*The (\d+) rows filled before are committed and kept\./;
ok(defined $kept, 'and says how many rows were kept');
is($node->safe_psql('postgres', 'SELECT count(status) FROM locked'), $kept,
	'exactly those rows are filled');
is($node->safe_psql('postgres', 'SELECT count(*) FROM locked WHERE status IS NOT NULL AND id >= 350'), '0',
	'nothing at or past the locked row was filled');
cmp_ok($kept, '>=', 300, 'every batch before the locked row committed (retries went on smaller)');
$in .= "COMMIT;\n\\q\n";
$holder->finish;
$node->safe_psql('postgres', "CALL safe_backfill('locked', 'status', 'x', 100)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM locked WHERE status IS NULL'), '0',
	'a second call finishes once the lock is gone');

# --- adaptive batch size ----------------------------------------------------------------
# A trigger that takes 1 ms per row makes a batch's time proportional to its
# rows: with a 50 ms target, batches of 1000 rows shrink.
$node->safe_psql('postgres', q{
	CREATE TABLE slow (id int PRIMARY KEY, status text);
	INSERT INTO slow SELECT generate_series(1, 3000);
	CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS
	  $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$;
	CREATE TRIGGER slow_row BEFORE UPDATE ON slow FOR EACH ROW EXECUTE FUNCTION slow_row();
});
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	SET safe_backfill.hot_rounds = 1;
	CALL safe_backfill('slow', 'status', 'x', 1000, target_batch_ms => 50);
});
is($ret, 0, 'adaptive run succeeded') or diag $stderr;
my $batches = $node->safe_psql('postgres', 'SELECT count(DISTINCT xmin::text) FROM slow');
cmp_ok($batches, '>=', 8, "slow batches shrink toward the target ($batches batches for 3000 rows at most 1000 each)");
is($node->safe_psql('postgres', 'SELECT max(n) FROM (SELECT count(*) AS n FROM slow GROUP BY xmin::text) b'),
	'1000', 'the first batch had the full batch_size');
like($stderr, qr/batch time p50 \d+\.\d ms, p99 \d+\.\d ms/, 'the summary reports batch time percentiles');

$node->safe_psql('postgres', 'UPDATE slow SET status = NULL');
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	SET safe_backfill.hot_rounds = 1;
	CALL safe_backfill('slow', 'status', 'x', 1000, target_batch_ms => 0);
});
is($node->safe_psql('postgres', 'SELECT count(DISTINCT xmin::text) FROM slow'), '3',
	'target_batch_ms => 0 keeps every batch at batch_size');

# --- the same row lock under HOT rounds ---------------------------------------------------
# Row 350's round times out: the retry starts its batch over, smaller, from
# its first round; the rounds committed before stay and are counted, and no
# row more than a batch (100 keys) past the locked one is touched.
$node->safe_psql('postgres', 'UPDATE locked SET status = NULL');
($in, $out, $err) = ('', '', '');
$holder = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$err);
$in .= "BEGIN;\nUPDATE locked SET id = id WHERE id = 350;\nSELECT 'locked';\n";
$holder->pump until $out =~ /locked/;
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET safe_backfill.progress_interval = 0;
	SET safe_backfill.target_batch_ms = 0;
	SET safe_backfill.batch_lock_timeout = '50ms';
	SET safe_backfill.max_batch_retries = 2;
	SET safe_backfill.hot_rounds = 8;
	CALL safe_backfill('locked', 'status', 'y', 100);
});
isnt($ret, 0, 'with HOT rounds: gives up when the row lock is never released');
like($stderr,
	qr/NOTICE:  safe_backfill: locked\.status: batch 4 waited more than 50 ms for a row lock and was rolled back; retrying with 50 rows in \d+ ms \(attempt 2 of 3\)/,
	'the round that timed out is retried with a smaller batch');
($kept) = $stderr =~ /DETAIL:  .*The (\d+) rows filled before are committed and kept\./;
is($node->safe_psql('postgres', 'SELECT count(status) FROM locked'), $kept,
	"exactly the rows said to be kept are filled ($kept)");
is($node->safe_psql('postgres', q{SELECT rows_done FROM safe_backfill_jobs WHERE relid = 'locked'::regclass ORDER BY id DESC LIMIT 1}),
	$kept, 'and the job counts each of them');
is($node->safe_psql('postgres', 'SELECT count(*) FROM locked WHERE status IS NOT NULL AND id > 450'), '0',
	'nothing past the batch of the locked row was filled');
cmp_ok($kept, '>', 300, 'the rounds of the locked batch before its row committed');
$in .= "COMMIT;\n\\q\n";
$holder->finish;
$node->safe_psql('postgres', "CALL safe_backfill('locked', 'status', 'y', 100)");
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE status = 'y'), count(*) FROM locked}), '1000|1000',
	'a second call finishes once the lock is gone');

$node->stop;
done_testing();

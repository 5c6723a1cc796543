# safe_update and safe_delete stopped in the middle and run again: a cancel
# (recorded as failed) and a crash (immediate shutdown: interrupted), then a
# re-run that resumes after the saved key (it does not start over: a row
# before that key set back by hand is not changed again) and changes every
# other row exactly once (n = n + 1: twice would show 2); resume => false
# starts over, its progress that of its new pass; the jobs table and the progress
# view record the operation, the failures and the end; workers => 2; a dry
# run changes nothing and counts the matching rows.  Each run is held at a
# row a gate session keeps locked, so the test acts while it is running.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('update_delete');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off");
$node->start;

# n counts the updates of each row; deleted logs each delete once (its key
# makes a second one fail loudly)
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE FUNCTION seed(tbl text, nrows int) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	  EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, other int NOT NULL DEFAULT 0)', tbl);
	  EXECUTE format('INSERT INTO %I (id) SELECT generate_series(1, %s)', tbl, nrows);
	  EXECUTE format('CREATE TRIGGER log_delete BEFORE DELETE ON %I FOR EACH ROW EXECUTE FUNCTION log_delete()', tbl);
	END $$;
	CREATE TABLE deleted (tbl name, id int, PRIMARY KEY (tbl, id));
	CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO deleted VALUES (TG_TABLE_NAME, OLD.id);
	  RETURN OLD;
	END $$;
});

my $settings = 'SET safe_backfill.progress_interval = 0; SET safe_backfill.target_batch_ms = 0; '
  . 'SET safe_backfill.batch_lock_timeout = 0';

# A CALL in a psql of its own, in the background (each statement in its own
# -c: one query string with several would be one transaction, where the
# procedure cannot commit).
sub start_call
{
	my ($sql) = @_;
	my %run = (out => '', err => '');
	my @commands = map { ('-c', $_) } split /;\s*/, "$settings; $sql";
	$run{h} = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), @commands ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

sub call
{
	my ($sql) = @_;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', "$settings;\n$sql");
	return ($ret, $stderr);
}

# A query's result; its error instead when it fails, so that the test goes on
# and reports every difference.
sub q1
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $_[0]);
	return $ret == 0 ? $stdout : "ERROR: $stderr";
}

my $running = q{query ~ 'CALL safe_(update|delete)\(' AND backend_type = 'client backend'};

# Start $call held at the locked row(s) $gate_where of $table; returns the run and the gate.
sub start_held
{
	my ($table, $gate_where, $call) = @_;
	my $gate = lock_rows($node, $table, $gate_where);
	my $run = start_call($call);
	wait_at_gate($gate, 1, $running);
	return ($run, $gate);
}

sub cancel_held
{
	my ($run, $gate) = @_;
	q1(qq{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE $running AND pid <> pg_backend_pid()});
	$run->{h}->finish;
	release_gate($gate);
}

# Crash the server (immediate shutdown) while $run is held, and start it again.
sub crash_held
{
	my ($run, $gate) = @_;
	# A transaction that writes commits synchronously here, flushing the WAL
	# before it: the run's asynchronous commits are kept, the crash only
	# loses what was not committed.  (One that only takes an xid commits
	# asynchronously.)
	q1('CREATE TABLE wal_flushed (); DROP TABLE wal_flushed');
	$node->stop('immediate');
	$run->{h}->finish;
	$gate->{h}->finish;    # its session ended with the server
	$node->start;
}

sub job { return q1(qq{SELECT $_[1] FROM safe_backfill_jobs WHERE relid = '$_[0]'::regclass ORDER BY id DESC LIMIT 1}); }
sub progress { return q1(qq{SELECT $_[1] FROM safe_backfill_progress WHERE table_name = 'public.$_[0]' ORDER BY id DESC LIMIT 1}); }

# --- safe_update cancelled, then resumed ------------------------------------------------
# 20,000 rows, batches of 500 (n is in no index, but safe_update's batches
# commit whole, no HOT rounds: see update_hot_rounds.spec): the cancel comes
# while batch 11 (5001-5500) waits at row 5001.
q1(q{SELECT seed('u', 20000)});
my ($ret, $stderr);
my ($run, $gate) = start_held('u', 'id = 5001', q{CALL safe_update('u', 'n = n + 1', batch_size => 500)});
is(q1(qq{SELECT query ~ 'safe_update' FROM pg_stat_activity WHERE $running}), 't',
	'pg_stat_activity shows the run');
# a second run on the same table, while it runs, is refused at once
($ret, $stderr) = call(q{CALL safe_delete('u', 'id > 19000', batch_size => 500)});
isnt($ret, 0, 'a safe_delete of the same table meanwhile is refused');
like($stderr, qr/ERROR:  safe_delete: another session is already running safe_update or safe_delete on table u\n/,
	'it says another session runs on the table');
like($stderr, qr/DETAIL:  Two runs on one table would fight over the same rows; nothing was changed\./,
	'and why');
is(q1('SELECT count(*) FROM u'), '20000', 'nothing was deleted');
cancel_held($run, $gate);
isnt($run->{h}->result(0), 0, 'the cancelled safe_update fails');
like($run->{err}, qr/canceling statement due to user request/, 'with the cancel');
is(job('u', q{operation || ' ' || state || ': ' || error}), 'update failed: canceling statement due to user request',
	'the jobs table records the failed update and its error');
is(progress('u', 'operation || \' \' || state'), 'update failed', 'so does the progress view');
my $last_key = job('u', 'last_key[1]');
is($last_key, '5000', 'the saved key is the end of the last committed batch');
my $done_before = q1('SELECT count(*) FROM u WHERE n = 1');
is(q1('SELECT count(*) FROM u WHERE n > 1'), '0', 'no row was changed twice');
is(job('u', 'rows_done'), $done_before, "the job counts the rows changed ($done_before)");
is(q1("SELECT count(*) FROM u WHERE n = 0 AND id <= $last_key"), '0', 'every row up to the saved key was changed');
is(q1("SELECT count(*) FROM u WHERE n = 1 AND id > $last_key + 500"), '0', 'none past the batch that waited');
# a row before the saved key set back: a run that started over would change it again
q1('UPDATE u SET n = 0 WHERE id = 10');

($ret, $stderr) = call(q{CALL safe_update('u', 'n = n + 1', batch_size => 500)});
is($ret, 0, 'the second call succeeds') or diag $stderr;
like($stderr, qr/safe_update: u: resuming run \d+ .*after key \($last_key\)/, 'it says it resumes after the saved key');
like($stderr, qr/safe_update: u: updated \d+ rows/, 'and how many rows it updated');
is(q1('SELECT n FROM u WHERE id = 10'), '0', 'the row before the saved key is not changed again');
is(q1('SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1 AND id <> 10) FROM u'), '19999|0',
	'every other row was changed exactly once');
is(job('u', q{operation || ' ' || state || ' ' || coalesce(error, '-') || ' ' || rows_done}), 'update done - 20000',
	'the jobs table records the run done, with every row counted once');
is(progress('u', q{operation || ' ' || state || ' ' || rows_done}), 'update done 20000', 'so does the progress view');
is(q1(q{SELECT count(*) FROM safe_backfill_jobs WHERE relid = 'u'::regclass}), '1', 'one run, resumed');

# --- resume => false starts over --------------------------------------------------------
# (analysed: the run's estimate of the rows, for its percent, is exact)
q1(q{SELECT seed('over', 20000); ANALYZE over});
($run, $gate) = start_held('over', 'id = 5001', q{CALL safe_update('over', 'n = n + 1', batch_size => 500, resume => false)});
cancel_held($run, $gate);
$done_before = q1('SELECT count(*) FROM over WHERE n = 1');
is($done_before, '5000', "the cancelled run changed its committed batches ($done_before rows)");
# started over, held at row 5001 again: its progress is that of this pass
($run, $gate) = start_held('over', 'id = 5001', q{CALL safe_update('over', 'n = n + 1', batch_size => 500, resume => false)});
# (the estimate scales with the table's pages, which the first pass grew)
is(q1(q{SELECT j.rows_scanned || ' ' || (p.percent = round(100.0 * 5000 / j.rows_estimated, 1))
	FROM safe_backfill_jobs j JOIN safe_backfill_progress p USING (id) WHERE j.relid = 'over'::regclass}),
	'5000 true', 'the progress of a run started over counts the rows of its new pass only');
release_gate($gate);
$run->{h}->finish;
is($run->{h}->result(0), 0, 'resume => false runs') or diag $run->{err};
like($run->{err}, qr/safe_update: over: run \d+ starts over from the beginning of the table: resume => false/,
	'it says it starts over');
like($run->{err}, qr/safe_update: over: updated 20000 rows/, 'and changes every row');
is(q1('SELECT count(*) FILTER (WHERE n = 2), count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n NOT IN (1, 2)) FROM over'),
	'5000|15000|0', 'the rows of the first pass were changed again');
# the same run (its id) counts every row it changed, the first pass's too
is(job('over', q{state || ' ' || rows_done || ' ' || (rows_scanned = 20000)}), 'done 25000 true',
	'its job counts the rows changed by both passes, and scanned the table once in the last');

# --- safe_update: crash, then resume ----------------------------------------------------
q1(q{SELECT seed('crashed', 20000)});
($run, $gate) = start_held('crashed', 'id = 5001', q{CALL safe_update('crashed', 'n = n + 1', batch_size => 500)});
crash_held($run, $gate);
is(progress('crashed', q{operation || ' ' || state}), 'update interrupted',
	'after the crash the progress view calls the run interrupted');
$done_before = q1('SELECT count(*) FROM crashed WHERE n = 1');
is(job('crashed', 'rows_done'), $done_before, "the job records exactly the committed rows ($done_before)");
$last_key = job('crashed', 'last_key[1]');
is($last_key, '5000', 'its saved key is the end of the last committed batch');
($ret, $stderr) = call(q{CALL safe_update('crashed', 'n = n + 1', batch_size => 500)});
is($ret, 0, 'the call after the crash succeeds') or diag $stderr;
like($stderr, qr/safe_update: crashed: resuming run \d+ .*after key \($last_key\)/, 'it resumes after the saved key');
is(q1('SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM crashed'), '20000|0',
	'every row was changed exactly once');
is(job('crashed', q{state || ' ' || rows_done}), 'done 20000', 'the run is done and counted every row once');

# --- safe_delete: crash, then resume --------------------------------------------------
# deletes the even ids; the gate holds an even row (an odd one the DELETE never locks)
q1(q{SELECT seed('d', 20000)});
($run, $gate) = start_held('d', 'id = 5002', q{CALL safe_delete('d', 'id % 2 = 0', batch_size => 500)});
crash_held($run, $gate);
is(progress('d', q{operation || ' ' || state}), 'delete interrupted', 'safe_delete after the crash: interrupted');
my $deleted_before = q1(q{SELECT count(*) FROM deleted WHERE tbl = 'd'});
is(job('d', 'rows_done'), $deleted_before, "the job records exactly the committed deletes ($deleted_before)");
is(q1('SELECT 10000 - count(*) FROM d WHERE id % 2 = 0'), $deleted_before, 'and those rows are gone');
$last_key = job('d', 'last_key[1]');
is($last_key, '5000', 'its saved key is the end of the last committed batch');
($ret, $stderr) = call(q{CALL safe_delete('d', 'id % 2 = 0', batch_size => 500)});
is($ret, 0, 'the call after the crash succeeds') or diag $stderr;
like($stderr, qr/safe_delete: d: resuming run \d+ .*after key \($last_key\)/, 'it resumes after the saved key');
like($stderr, qr/safe_delete: d: deleted \d+ rows/, 'and says how many rows it deleted');
is(q1(q{SELECT count(*) FILTER (WHERE id % 2 = 0), count(*) FILTER (WHERE id % 2 = 1) FROM d}), '0|10000',
	'every matching row is deleted, no other');
is(q1(q{SELECT count(*) FROM deleted WHERE tbl = 'd'}), '10000', 'each deleted once');
is(job('d', q{operation || ' ' || state || ' ' || rows_done}), 'delete done 10000', 'the run is done and counted each delete once');

# --- safe_delete cancelled, resumed ---------------------------------------------------
q1(q{SELECT seed('dc', 20000)});
($run, $gate) = start_held('dc', 'id = 5002', q{CALL safe_delete('dc', 'id % 2 = 0', batch_size => 500)});
cancel_held($run, $gate);
is(job('dc', q{operation || ' ' || state || ': ' || error}), 'delete failed: canceling statement due to user request',
	'a cancelled safe_delete is recorded as failed');
$last_key = job('dc', 'last_key[1]');
# a matching row before the saved key inserted again: a run that started over would delete it
q1(q{INSERT INTO dc (id) VALUES (10)});
($ret, $stderr) = call(q{CALL safe_delete('dc', 'id % 2 = 0', batch_size => 500)});
is($ret, 0, 'the re-run succeeds') or diag $stderr;
like($stderr, qr/safe_delete: dc: resuming run \d+ .*after key \($last_key\)/, 'it resumes after the saved key');
is(q1(q{SELECT string_agg(id::text, ',') FROM dc WHERE id % 2 = 0}), '10', 'the row before the saved key is kept');
is(q1(q{SELECT count(*) FROM dc WHERE id % 2 = 1}), '10000', 'no other row deleted');
is(job('dc', q{state || ' ' || rows_done}), 'done 10000', 'the run is done and counted each delete once (row 10 by the first call)');

# --- safe_delete by block ranges (no primary key) cancelled, resumed --------------------
q1(q{CREATE TABLE blocks (id int NOT NULL, other int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = off);
	INSERT INTO blocks (id) SELECT generate_series(1, 20000);
	CREATE TRIGGER log_delete BEFORE DELETE ON blocks FOR EACH ROW EXECUTE FUNCTION log_delete()});
($run, $gate) = start_held('blocks', 'id = 5002', q{CALL safe_delete('blocks', 'id % 2 = 0', batch_size => 500)});
cancel_held($run, $gate);
like($run->{err}, qr/canceling statement due to user request/, 'by block ranges: cancelled');
$deleted_before = q1(q{SELECT count(*) FROM deleted WHERE tbl = 'blocks'});
is(job('blocks', q{operation || ' ' || state || ' ' || rows_done}), "delete failed $deleted_before",
	"the job records the failure and the committed deletes ($deleted_before)");
my $last_block = job('blocks', 'last_block');
like($last_block, qr/^\d+$/, "its position is a block ($last_block)");
($ret, $stderr) = call(q{CALL safe_delete('blocks', 'id % 2 = 0', batch_size => 500)});
is($ret, 0, 'the re-run succeeds') or diag $stderr;
like($stderr, qr/safe_delete: blocks: resuming run \d+ .*after block $last_block/, 'it resumes after that block');
is(q1(q{SELECT count(*) FILTER (WHERE id % 2 = 0), count(*) FILTER (WHERE id % 2 = 1) FROM blocks}), '0|10000',
	'every matching row is deleted, no other');
is(q1(q{SELECT count(*) FROM deleted WHERE tbl = 'blocks'}), '10000', 'each once');
is(job('blocks', q{state || ' ' || rows_done}), 'done 10000', 'the run is done and counted each delete once');

# --- a run that fails on a row: the error is recorded, the rows before it kept ---------------
# (hot_rounds = 1: were the batches split into HOT rounds, the failing
# batch's rounds before row 1500's would commit)
q1(q{SELECT seed('fails', 2000)});
($ret, $stderr) = call(q{SET safe_backfill.hot_rounds = 1;
	CALL safe_update('fails', 'n = n + 1 + 0 * (1 / (id - 1500))', batch_size => 100)});
isnt($ret, 0, 'an update that fails at row 1500 stops');
like($stderr, qr/ERROR:  division by zero/, 'with the error');
is(progress('fails', q{operation || ' ' || state || ': ' || error}), 'update failed: division by zero',
	'the progress view shows the failed update and its error');
is(q1('SELECT count(*) FILTER (WHERE n <> 0), max(id) FILTER (WHERE n <> 0) FROM fails'), '1400|1400',
	'the batches before the failing one are kept');
is(job('fails', 'rows_done'), '1400', 'and counted');

# --- workers => 2 ------------------------------------------------------------------------
q1(q{SELECT seed('w', 20000)});
($ret, $stderr) = call(q{\set VERBOSITY verbose
	CALL safe_update('w', 'n = n + 1', batch_size => 500, workers => 2)});
if ($stderr =~ /ERROR:  0A000:/)
{
	pass('workers => 2 is refused with 0A000 feature_not_supported');
	is(q1('SELECT count(*) FROM w WHERE n <> 0'), '0', 'the table is unchanged');
}
else
{
	is($ret, 0, 'safe_update with workers => 2 runs') or diag $stderr;
	is(q1('SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM w'), '20000|0',
		'every row changed exactly once');
	is(job('w', q{operation || ' ' || state || ' ' || rows_done}), 'update done 20000', 'the job counts each once');
}
($ret, $stderr) = call(q{\set VERBOSITY verbose
	CALL safe_delete('w', 'id % 2 = 0', batch_size => 500, workers => 2)});
if ($stderr =~ /ERROR:  0A000:/)
{
	pass('safe_delete with workers => 2 is refused with 0A000 feature_not_supported');
	is(q1('SELECT count(*) FROM w'), '20000', 'the table is unchanged');
}
else
{
	is($ret, 0, 'safe_delete with workers => 2 runs') or diag $stderr;
	is(q1(q{SELECT count(*) FILTER (WHERE id % 2 = 0), count(*) FILTER (WHERE id % 2 = 1) FROM w}), '0|10000',
		'every matching row deleted, no other');
	is(q1(q{SELECT count(*) FROM deleted WHERE tbl = 'w'}), '10000', 'each once');
}

# --- dry runs ---------------------------------------------------------------------------------
q1(q{SELECT seed('dry', 20000); CREATE TABLE dry_before AS SELECT ctid AS tid, xmin::text AS x, * FROM dry});
my $unchanged = q{SELECT (SELECT count(*) FROM dry) - (SELECT count(*) FROM dry d
	WHERE EXISTS (SELECT FROM dry_before b WHERE b.tid = d.ctid AND b.x = d.xmin::text))};
($ret, $stderr) = call(q{CALL safe_update('dry', 'n = n + 1', 'id % 3 = 0', batch_size => 500, dry_run => true)});
is($ret, 0, 'a dry run of safe_update runs') or diag $stderr;
like($stderr, qr/safe_update: dry: .*dry run: 6666 rows match/, 'and counts the matching rows');
is(q1($unchanged), '0', 'it changed nothing: every row version is the one before');
is(job('dry', q{operation || ' ' || dry_run || ' ' || state || ' ' || rows_done}), 'update true done 6666',
	'the jobs table records the dry run and its count');
($ret, $stderr) = call(q{CALL safe_delete('dry', 'id % 3 = 0', batch_size => 500, dry_run => true)});
is($ret, 0, 'a dry run of safe_delete runs') or diag $stderr;
like($stderr, qr/safe_delete: dry: .*dry run: 6666 rows match/, 'and counts the matching rows');
is(q1($unchanged), '0', 'it deleted nothing');
# A dry run cancelled in the middle is not resumed: the real run does all.
# A dry run locks no row: it is held by its "where", which waits at row 5001
# for an advisory lock the gate holds.
q1(q{SELECT seed('dry2', 20000);
	CREATE FUNCTION gated(id int) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
	  IF id = 5001 THEN
	    PERFORM pg_advisory_lock_shared(4245);
	    PERFORM pg_advisory_unlock_shared(4245);
	  END IF;
	  RETURN true;
	END $$});
$gate = { in => '', out => '', err => '', node => $node };
$gate->{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
	'<', \$gate->{in}, '>', \$gate->{out}, '2>', \$gate->{err});
$gate->{in} .= "SELECT 'pid=' || pg_backend_pid(), pg_advisory_lock(4245);\n";
$gate->{h}->pump until $gate->{out} =~ /pid=(\d+)/;
$gate->{pid} = $1;
$run = start_call(q{CALL safe_update('dry2', 'n = n + 1', 'gated(id)', batch_size => 500, dry_run => true)});
wait_at_gate($gate, 1, $running);
cancel_held($run, $gate);
like($run->{err}, qr/canceling statement due to user request/, 'a dry run held at row 5001 is cancelled');
is(q1('SELECT count(*) FROM dry2 WHERE n <> 0'), '0', 'the cancelled dry run changed nothing');
($ret, $stderr) = call(q{CALL safe_update('dry2', 'n = n + 1', 'gated(id)', batch_size => 500)});
is($ret, 0, 'the real run after it runs') or diag $stderr;
unlike($stderr, qr/resuming/, 'it does not resume the dry run');
is(q1('SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM dry2'), '20000|0',
	'and changes every row once');

$node->stop;
done_testing();

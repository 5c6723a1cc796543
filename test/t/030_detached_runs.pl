# Detached runs without shared_preload_libraries: safe_backfill_start returns
# at once and a background worker runs the backfill as the calling role,
# after the caller disconnected; nothing runs when the caller rolls back;
# safe_backfill_wait relays the end (and raises a cancel); a second start on
# the column is refused while one runs; another role may neither wait for
# nor cancel a run; workers => n works detached.  Runs are held at a row
# gate (RowGate), never timed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('detached');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, 20000);
	GRANT SELECT, UPDATE ON t TO alice;
	-- counts the committed updates of every row of every table it is on
	CREATE TABLE writes (tbl name, id int, n int NOT NULL, PRIMARY KEY (tbl, id));
	GRANT ALL ON writes TO alice;
	CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO writes VALUES (TG_TABLE_NAME, NEW.id, 1)
	  ON CONFLICT (tbl, id) DO UPDATE SET n = writes.n + 1;
	  RETURN NEW;
	END $$;
	CREATE TRIGGER count_write BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION count_write();
});

my $workers = q{backend_type = 'safe_backfill detached'};

# psql as a role, with the settings a held run needs: its batches wait at the gate
sub as_role
{
	my ($role, $sql) = @_;
	return $node->psql('postgres',
		"SET safe_backfill.progress_interval = 0; SET safe_backfill.batch_lock_timeout = 0; $sql",
		extra_params => [ '-U', $role ]);
}

# --- start, the client disconnects, the run goes on to the end -----------------------
my $gate = lock_rows($node, 't', 'id = 5001');
my ($ret, $out, $err) = as_role('alice', q{SELECT safe_backfill_start('t', 'status', 'done', 500)});
is($ret, 0, 'safe_backfill_start returns') or diag $err;
my $id = $out;
like($id, qr/^\d+$/, "it returns the run's id ($id)");
# psql has exited: the run is held at the gate in its worker, detached from it
wait_at_gate($gate, 1, $workers);
is($node->safe_psql('postgres', qq{SELECT state || ' ' || detached || ' ' || username FROM safe_backfill_progress WHERE id = $id}),
	'running true alice', 'the progress view shows the detached run, running as the role that started it');
is($node->safe_psql('postgres', qq{SELECT usename FROM pg_stat_activity WHERE $workers}),
	'alice', 'its worker is connected as that role');

# --- a second start on the column is refused while it runs ---------------------------
($ret, $out, $err) = as_role('alice', q{SELECT safe_backfill_start('t', 'status', 'other', 500)});
like($err, qr/ERROR:  safe_backfill_start: t\.status is already being filled by run $id/,
	'a second start on the same column is refused');
($ret, $out, $err) = as_role('alice', q{CALL safe_backfill('t', 'status', 'other', 500)});
like($err, qr/ERROR:  safe_backfill: t\.status is already being filled by another session/,
	'and so is a CALL');

# --- another role may neither wait for it nor cancel it ------------------------------
($ret, $out, $err) = as_role('bob', qq{CALL safe_backfill_wait($id)});
like($err, qr/ERROR:  safe_backfill_wait: permission denied for detached run $id/,
	'another role cannot wait for the run');
($ret, $out, $err) = as_role('bob', qq{SELECT safe_backfill_cancel($id)});
like($err, qr/ERROR:  safe_backfill_cancel: permission denied for detached run $id/,
	'nor cancel it');

release_gate($gate);
($ret, $out, $err) = as_role('alice', qq{CALL safe_backfill_wait($id)});
is($ret, 0, 'safe_backfill_wait returns when the run is done') or diag $err;
like($err, qr/NOTICE:  safe_backfill_wait: run $id is done: 20000 rows filled/, 'and says so');
is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 't'}), '20000|1|1',
	'every row was written exactly once');
is($node->safe_psql('postgres', qq{SELECT state FROM safe_backfill_progress WHERE id = $id}), 'done',
	'the run is recorded done');

# --- ROLLBACK after start: nothing runs ---------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE r (id int PRIMARY KEY, status text);
	INSERT INTO r SELECT generate_series(1, 1000);
});
my %bg = (in => '', out => '', err => '');
$bg{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
	'<', \$bg{in}, '>', \$bg{out}, '2>', \$bg{err});
$bg{in} .= "BEGIN;\nSELECT 'started ' || safe_backfill_start('r', 'status', 'x', 100);\n";
$bg{h}->pump until $bg{out} =~ /^started \d+$/m || !$bg{h}->pumpable;
like($bg{out}, qr/^started \d+$/m, 'safe_backfill_start returns inside a transaction');
# its worker waits for this transaction to end before it looks for the run
$node->poll_query_until('postgres',
	qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE $workers AND wait_event = 'transactionid'})
  or die 'the worker did not wait for the transaction';
$bg{in} .= "ROLLBACK;\n\\q\n";
$bg{h}->finish;
$node->poll_query_until('postgres', qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE $workers})
  or die 'the worker did not exit';
is($node->safe_psql('postgres', q{SELECT count(status) FROM r}), '0', 'after a ROLLBACK nothing was filled');
is($node->safe_psql('postgres', q{SELECT count(*) FROM safe_backfill_jobs WHERE table_name = 'public.r'}), '0',
	'and no run was recorded');

# --- cancel, then wait raises; the same start resumes the run -----------------------
$node->safe_psql('postgres', q{
	CREATE TABLE c (id int PRIMARY KEY, status text);
	INSERT INTO c SELECT generate_series(1, 10000);
	CREATE TRIGGER count_write BEFORE UPDATE ON c FOR EACH ROW EXECUTE FUNCTION count_write();
	GRANT SELECT, UPDATE ON c TO alice;
});
$gate = lock_rows($node, 'c', 'id = 3001');
($ret, $id, $err) = as_role('alice', q{SELECT safe_backfill_start('c', 'status', 'done', 500)});
wait_at_gate($gate, 1, $workers);
($ret, $out, $err) = as_role('alice', qq{SELECT safe_backfill_cancel($id)});
is($out, 't', 'safe_backfill_cancel stops the running run') or diag $err;
($ret, $out, $err) = as_role('alice', qq{\\set VERBOSITY verbose\nCALL safe_backfill_wait($id)});
like($err, qr/ERROR:  57014: safe_backfill_wait: run $id was cancelled/,
	'safe_backfill_wait then raises the cancel');
is($node->safe_psql('postgres', qq{SELECT state || ' ' || (rows_done = (SELECT count(status) FROM c)) || ' ' || (rows_done > 0) FROM safe_backfill_progress WHERE id = $id}),
	'cancelled true true', 'the run is recorded cancelled, with the batches committed before the cancel');
($ret, $out, $err) = as_role('alice', qq{SELECT safe_backfill_cancel($id)});
is($out, 'f', 'a second cancel finds nothing to stop');
release_gate($gate);
($ret, $out, $err) = as_role('alice', q{SELECT safe_backfill_start('c', 'status', 'done', 500)});
is($out, $id, 'starting it again with the same arguments resumes the same run');
($ret, $out, $err) = as_role('alice', qq{CALL safe_backfill_wait($id)});
is($ret, 0, 'which ends') or diag $err;
is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 'c'}), '10000|1|1',
	'every row was written exactly once across the cancel');

# --- workers => n, detached -----------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE p (id int PRIMARY KEY, status text);
	INSERT INTO p SELECT generate_series(1, 20000);
	CREATE TRIGGER count_write BEFORE UPDATE ON p FOR EACH ROW EXECUTE FUNCTION count_write();
});
($ret, $id, $err) = $node->psql('postgres', q{SELECT safe_backfill_start('p', 'status', 'done', 500, workers => 2)});
($ret, $out, $err) = $node->psql('postgres', qq{SET safe_backfill.progress_interval = 0; CALL safe_backfill_wait($id)});
is($ret, 0, 'a detached run with workers => 2 ends') or diag $err;
is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 'p'}), '20000|1|1',
	'every row written exactly once');
is($node->safe_psql('postgres',
		qq{SELECT count(*) FROM safe_backfill_job_ranges WHERE job_id = $id AND done}),
	'2', 'by two parallel ranges');

# --- wait with a timeout ------------------------------------------------------------------
$node->safe_psql('postgres', q{UPDATE t SET status = NULL WHERE id <= 10});
$gate = lock_rows($node, 't', 'id = 1');
($ret, $id, $err) = as_role('alice', q{SELECT safe_backfill_start('t', 'status', 'again', 500)});
wait_at_gate($gate, 1, $workers);
($ret, $out, $err) = as_role('alice', qq{CALL safe_backfill_wait($id, timeout => '10 ms')});
like($err, qr/ERROR:  safe_backfill_wait: run $id is still running after the timeout/,
	'safe_backfill_wait raises when the timeout passes first');
release_gate($gate);
($ret, $out, $err) = as_role('alice', qq{CALL safe_backfill_wait($id)});
is($ret, 0, 'and the run goes on to its end') or diag $err;

# --- the attack: a SECURITY DEFINER function called by a superuser -----------------
# mallory's function starts a run whose expression reports the session it
# runs in.  Were the worker connected as the caller's session user (a
# superuser) with mallory as its role, the expression could SET ROLE back
# to the superuser; it connects as mallory herself.
$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE TABLE m (id int PRIMARY KEY, who text);
	INSERT INTO m SELECT generate_series(1, 10);
	ALTER TABLE m OWNER TO mallory;
	CREATE FUNCTION start_for_mallory() RETURNS bigint LANGUAGE sql SECURITY DEFINER
	    AS $$ SELECT safe_backfill_start('m', 'who',
	           expression => $e$session_user || ' ' || current_user || ' ' || current_setting('is_superuser')$e$) $$;
	ALTER FUNCTION start_for_mallory() OWNER TO mallory;
});
$id = $node->safe_psql('postgres', q{SELECT start_for_mallory()});
($ret, $out, $err) = $node->psql('postgres', qq{CALL safe_backfill_wait($id)});
is($ret, 0, 'the run started in the definer function ends') or diag $err;
is($node->safe_psql('postgres', q{SELECT DISTINCT who FROM m}), 'mallory mallory off',
	'its worker is connected as the function owner, not as the superuser who called it');

$node->stop;
done_testing();

# Detached runs with shared_preload_libraries = 'safe_backfill': after a
# server restart (immediate or fast shutdown) the launcher resumes the runs
# the restart interrupted, which end with every row written exactly once; a
# run whose role lost its UPDATE privilege, or was dropped, fails with its
# error recorded instead of running with other privileges.  Runs are held
# at a row gate (RowGate) when the server stops, never timed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $node = PostgreSQL::Test::Cluster->new('detached_restart');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'safe_backfill'\nsafe_backfill.max_detached_runs = 1\nrestart_after_crash = on\nmax_prepared_transactions = 2");
$node->start;

my $workers = q{backend_type = 'safe_backfill detached'};

$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE ROLE alice LOGIN;
	CREATE TABLE writes (tbl name, id int, n int NOT NULL, PRIMARY KEY (tbl, id));
	GRANT ALL ON writes TO alice;
	CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO writes VALUES (TG_TABLE_NAME, NEW.id, 1)
	  ON CONFLICT (tbl, id) DO UPDATE SET n = writes.n + 1;
	  RETURN NEW;
	END $$;
});

# A table of 20000 rows whose writes are counted, alice may fill it.
sub new_table
{
	my ($name) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $name (id int PRIMARY KEY, status text);
		INSERT INTO $name SELECT generate_series(1, 20000);
		CREATE TRIGGER count_write BEFORE UPDATE ON $name FOR EACH ROW EXECUTE FUNCTION count_write();
		GRANT SELECT, UPDATE ON $name TO alice;
	});
}

# alice starts a run on $table held at row 5001; returns its id once its worker waits there
sub start_held
{
	my ($table, $role) = @_;
	$role //= 'alice';
	my $gate = lock_rows($node, $table, 'id = 5001');
	my ($ret, $id, $err) = $node->psql('postgres',
		"SET safe_backfill.batch_lock_timeout = 0; SET safe_backfill.synchronous_commit = on; SELECT safe_backfill_start('$table', 'status', 'done', 500)",
		extra_params => [ '-U', $role ]);
	like($id, qr/^\d+$/, "$table: run $id started") or diag $err;
	wait_at_gate($gate, 1, $workers);
	ok($node->safe_psql('postgres', "SELECT count(status) FROM $table") > 0,
		"$table: it filled rows before the restart");
	return ($id, $gate);
}

sub wait_for_run
{
	my ($id, $role) = @_;
	return $node->psql('postgres',
		"SET safe_backfill.progress_interval = 0; CALL safe_backfill_wait($id)",
		extra_params => [ '-U', $role // 'alice' ]);
}

for my $mode ('immediate', 'fast')
{
	my $table = "t_$mode";
	new_table($table);
	my ($id, $gate) = start_held($table);
	$node->stop($mode);
	$gate->{h}->finish;    # its session ended with the server
	$node->start;
	my ($ret, $out, $err) = wait_for_run($id);
	is($ret, 0, "$mode shutdown: the launcher resumes run $id and safe_backfill_wait sees it end") or diag $err;
	like($err, qr/run $id is done: \d+ rows filled/, "$mode shutdown: it is done");
	is($node->safe_psql('postgres', "SELECT count(*), min(n), max(n) FROM writes WHERE tbl = '$table'"),
		'20000|1|1', "$mode shutdown: every row was written exactly once");
	is($node->safe_psql('postgres', "SELECT rows_done FROM safe_backfill_jobs WHERE id = $id"),
		'20000', "$mode shutdown: the run counts every row once");
}

# --- a crash (a worker killed): crash recovery, then the launcher resumes the run ----
{
	new_table('t_crash');
	my ($id, $gate) = start_held('t_crash');
	my $pid = $node->safe_psql('postgres', qq{SELECT pid FROM pg_stat_activity WHERE $workers});
	kill 'KILL', $pid;
	$gate->{h}->finish;    # its session ended with the crash
	$node->poll_query_until('postgres', undef, '') or die 'no restart after the crash';
	my ($ret, $out, $err) = wait_for_run($id);
	is($ret, 0, "crash: the launcher resumes run $id after crash recovery") or diag $err;
	is($node->safe_psql('postgres', "SELECT count(*), min(n), max(n) FROM writes WHERE tbl = 't_crash'"),
		'20000|1|1', 'crash: every row was written exactly once');
}

# --- safe_backfill.max_detached_runs = 1: two interrupted runs, resumed one at a time ----
# The gate is a prepared transaction: its row locks survive the restart, so
# the first resumed run waits at it while the second must not have started.
{
	new_table('one');
	new_table('two');
	$node->safe_psql('postgres', q{
		BEGIN;
		SELECT FROM one WHERE id = 5001 FOR UPDATE;
		SELECT FROM two WHERE id = 5001 FOR UPDATE;
		PREPARE TRANSACTION 'gate';
	});
	my @ids;
	for my $table ('one', 'two')
	{
		my ($ret, $id, $err) = $node->psql('postgres',
			"SET safe_backfill.batch_lock_timeout = 0; SET safe_backfill.synchronous_commit = on; SELECT safe_backfill_start('$table', 'status', 'done', 500)",
			extra_params => [ '-U', 'alice' ]);
		push @ids, $id;
	}
	$node->poll_query_until('postgres',
		qq{SELECT count(*) = 2 FROM pg_stat_activity WHERE $workers AND wait_event_type = 'Lock'})
	  or die 'the two runs did not reach the gate';
	$node->stop('immediate');
	$node->start;
	$node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE $workers AND wait_event_type = 'Lock'})
	  or die 'no resumed run reached the gate';
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM pg_stat_activity WHERE $workers}), '1',
		'max_detached_runs = 1: one run is resumed, the other waits for it');
	$node->safe_psql('postgres', q{COMMIT PREPARED 'gate'});
	for my $id (@ids)
	{
		my ($ret, $out, $err) = wait_for_run($id);
		is($ret, 0, "max_detached_runs = 1: run $id ends") or diag $err;
	}
	is($node->safe_psql('postgres', q{SELECT count(*), min(n), max(n) FROM writes WHERE tbl IN ('one', 'two')}),
		'40000|1|1', 'max_detached_runs = 1: every row of both tables written exactly once');
}

# --- the role lost its UPDATE privilege: the resumed run fails, recorded ------------
new_table('revoked');
my ($id, $gate) = start_held('revoked');
$node->safe_psql('postgres', q{REVOKE UPDATE ON revoked FROM alice});
my $before = $node->safe_psql('postgres', q{SELECT count(status) FROM revoked});
$node->stop('immediate');
$gate->{h}->finish;
$node->start;
my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSET safe_backfill.progress_interval = 0; CALL safe_backfill_wait($id)",
	extra_params => [ '-U', 'alice' ]);
like($err, qr/ERROR:  42501: safe_backfill_wait: run $id failed: permission denied/,
	'a run whose role lost UPDATE fails after the restart, with its error and SQLSTATE');
is($node->safe_psql('postgres', "SELECT state FROM safe_backfill_progress WHERE id = $id"), 'failed',
	'and is recorded failed');
is($node->safe_psql('postgres', q{SELECT count(status) FROM revoked}), $before,
	"it wrote nothing more (the $before rows filled before the restart stay)");

# --- the role was dropped: the run fails, recorded, and never runs as another role ----
$node->safe_psql('postgres', q{CREATE ROLE carol LOGIN; GRANT ALL ON writes TO carol});
new_table('dropped');
$node->safe_psql('postgres', q{GRANT SELECT, UPDATE ON dropped TO carol});
($id, $gate) = start_held('dropped', 'carol');
$node->safe_psql('postgres', q{REVOKE ALL ON dropped, writes FROM carol; DROP ROLE carol});
$before = $node->safe_psql('postgres', q{SELECT count(status) FROM dropped});
$node->stop('immediate');
$gate->{h}->finish;
$node->start;
($ret, $out, $err) = wait_for_run($id, 'postgres');
like($err, qr/ERROR:  safe_backfill_wait: run $id failed: the role that started this detached run no longer exists/,
	'a run whose role was dropped fails after the restart, with a clear error');
is($node->safe_psql('postgres', q{SELECT count(status) FROM dropped}), $before,
	'it wrote nothing more');

$node->stop;
done_testing();

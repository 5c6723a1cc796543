# The leader relays its workers' NOTICEs without keeping them: its memory
# stays flat however many a run relays (a trigger raising one per row).
# Before, each relayed NOTICE left its parsed fields (~700 bytes) in the
# procedure's memory until the CALL ended.
#
# The fact asserted is the leader's own memory, as pg_log_backend_memory_contexts
# writes it to the server log ("Grand total: N bytes"), taken once the leader
# has relayed nearly all of the run's notices: one worker has finished its
# half of the table (its queue is drained before it can exit), the other
# waits at the table's last row, held by a gate; at most two queues' worth
# (2 x 16 kB) of notices can be unread then.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RowGate;

my $rows = 40000;
my $node = PostgreSQL::Test::Cluster->new('parallel_notices');
$node->init;
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, status text);
	INSERT INTO t SELECT generate_series(1, $rows);
	-- the caller hides notices (client_min_messages = warning, which the
	-- workers inherit): the function raises its own, so the workers send
	-- them and the leader relays them, without showing them
	CREATE FUNCTION per_row_notice() RETURNS trigger LANGUAGE plpgsql
	SET client_min_messages = notice AS
	\$\$BEGIN
	  RAISE NOTICE 'row % of the table t is being filled by the backfill', NEW.id;
	  RETURN NEW;
	END\$\$;
	CREATE TRIGGER per_row_notice BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION per_row_notice();
});

my $gate = lock_rows($node, 't', "id = $rows");
my %run = (out => '', err => '');
$run{h} = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', 'SET client_min_messages = warning',
	  '-c', 'SET safe_backfill.progress_interval = 0',
	  '-c', 'SET safe_backfill.target_batch_ms = 0',
	  '-c', 'SET safe_backfill.batch_lock_timeout = 0',
	  '-c', "CALL safe_backfill('t', 'status', 'x', 1000, workers => 2)" ],
	'>', \$run{out}, '2>', \$run{err});

my $workers = q{(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'safe_backfill worker')};
wait_at_gate($gate, 1, q{backend_type = 'safe_backfill worker'});
$node->poll_query_until('postgres', "SELECT $workers = 1")
  or die 'the worker of the first half did not finish';
my $filled = $node->safe_psql('postgres', 'SELECT count(status) FROM t');
cmp_ok($filled, '>=', $rows / 2 - 1000, "the workers committed $filled rows (and as many notices) before the gate");

my $leader = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE query LIKE '%CALL safe_backfill(%' AND backend_type = 'client backend' AND pid <> pg_backend_pid()});
my $offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($leader)");
$node->wait_for_log(qr/\[$leader\] .*?LOG:  Grand total: \d+ bytes/, $offset);
my ($total) = slurp_file($node->logfile, $offset) =~ /\[$leader\] .*?LOG:  Grand total: (\d+) bytes/;
note "leader's memory after relaying about $filled notices: $total bytes";
# about 700 bytes a notice kept: over 20 MB here before the fix
cmp_ok($total, '<', 8 * 1024 * 1024, "the leader's memory stays bounded ($total bytes)");

release_gate($gate);
$run{h}->finish;
is($run{h}->result(0), 0, 'the run finishes') or diag $run{err};
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE status IS NULL'), '0', 'every row filled');

$node->stop;
done_testing();

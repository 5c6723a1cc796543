# Citus, how a distributed table's shards are run: no count of the whole
# table before the fill (the batches are sized from the shards' statistics
# on their nodes), several shards at a time on each node by default
# (safe_backfill.citus_shards_per_node, 0: as many as the coordinator has
# cores; workers => n asks for n), one connection to a node for each shard
# run at a time there (the extension's check and the estimate use them
# too), and shards run together wait for each other's batches after each
# HOT round (safe_backfill.round_horizon_wait is set on for them).
#
# Needs Citus installed in the PostgreSQL being tested (citus.so in
# pg_config --pkglibdir); without it the file reports itself skipped.  It
# builds its own cluster: a coordinator and two workers on 127.0.0.1.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CitusCluster;
use RowGate;

my ($coord, @workers) = CitusCluster::start_or_skip();
my ($ret, $out, $err);
my %worker_by_port = map { ($_->port => $_) } @workers;

# Every statement the workers receive goes to their logs.
for my $w (@workers)
{
	$w->safe_psql('postgres', q{ALTER SYSTEM SET log_statement = 'all'});
	$w->reload;
}

# What the workers logged since the offsets in %$from.
sub worker_log_since
{
	my ($from) = @_;
	return join '', map { slurp_file($_->logfile, $from->{ $_->port }) } @workers;
}

sub worker_log_offsets
{
	return { map { ($_->port => -s $_->logfile) } @workers };
}

sub start_call
{
	my ($sql, @settings) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[ 'psql', '-X', '-d', $coord->connstr('postgres'),
		  (map { ('-c', "SET $_") } @settings), '-c', $sql ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

$coord->safe_psql('postgres', q{
	SET citus.shard_count = 4;
	CREATE TABLE cs (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('cs', 'id');
	INSERT INTO cs SELECT generate_series(1, 8000);
});

# --- no count of the whole table up front ----------------------------------------
# A count through Citus sends each worker "SELECT count(*) ... FROM <shard>"
# for every shard; the only count the workers may see is the one over the
# NULLs left, after the last shard.
my $offsets = worker_log_offsets();
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('cs', 'v', 1, 1000)});
is($ret, 0, 'the distributed table is filled') or diag $err;
my $logged = worker_log_since($offsets);
my @counts = grep { /SELECT count\(\*\) AS count FROM/ } split /\n/, $logged;
ok(scalar(@counts) > 0, "the workers' logs show the count of the NULLs left (the check works)")
  or diag $logged;
is(join("\n", grep { !/IS NULL/ } @counts), '', 'and no count of every row of a shard');
my ($batch) = $err =~ /cs\.v: distributed table, filling 4 of its 4 shards on their nodes, \d+ at a time on each node, batches of at most (\d+) rows/;
ok(defined($batch) && $batch >= 550 && $batch <= 800,
	"batches sized from the shards' estimated rows, about a third of 2000 a shard (" . ($batch // 'none') . ")")
  or diag $err;
is($coord->safe_psql('postgres', q{
	SELECT j.rows_estimated BETWEEN 7000 AND 9000 FROM safe_backfill_jobs j
	WHERE j.table_name = 'public.cs' ORDER BY j.id DESC LIMIT 1}), 't',
	"the coordinator's job records the estimate (8000 rows)");
is($coord->safe_psql('postgres', q{SELECT count(*) FROM cs WHERE v IS NULL}), '0', 'no NULL left');

# --- the shards run together are told to wait for each other ----------------------
like($logged, qr/'safe_backfill\.round_horizon_wait', \$\d+ = 'on'/,
	"the shards' sessions, run several at a time on a node, wait after each HOT round");
$coord->safe_psql('postgres', q{UPDATE cs SET v = NULL});
$offsets = worker_log_offsets();
($ret, $out, $err) = $coord->psql('postgres', q{
	SET safe_backfill.citus_shards_per_node = 1;
	SET safe_backfill.round_horizon_wait = off;
	CALL safe_backfill('cs', 'v', 1, 500)});
is($ret, 0, 'with safe_backfill.citus_shards_per_node = 1 the table is filled') or diag $err;
like($err, qr/filling 4 of its 4 shards on their nodes, 1 at a time on each node/, 'one shard at a time on each node');
like(worker_log_since($offsets), qr/'safe_backfill\.round_horizon_wait', \$\d+ = 'off'/,
	"and the caller's round_horizon_wait = off reaches the shards' sessions");

# --- a long snapshot on a node: its shards run without round waits ----------------
# A snapshot held for more than a second in the shards' database would make
# every round of every shard there wait its full second in vain (one in
# another database does not hold the table's horizon back).
my $wport = $workers[0]->port;
my %holder = (in => '', out => '', err => '');
$holder{h} = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $workers[0]->connstr('postgres') ],
	'<', \$holder{in}, '>', \$holder{out}, '2>', \$holder{err});
$holder{in} .= "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT 'pid=' || pg_backend_pid();\n";
$holder{h}->pump until $holder{out} =~ /pid=(\d+)/ || !$holder{h}->pumpable;
my ($holder_pid) = $holder{out} =~ /pid=(\d+)/ or die "no snapshot holder: $holder{err}";
$workers[0]->poll_query_until('postgres', qq{
	SELECT clock_timestamp() - xact_start > interval '1.5 s' AND backend_xmin IS NOT NULL
	FROM pg_stat_activity WHERE pid = $holder_pid})
  or die 'the snapshot holder did not get old enough';
$coord->safe_psql('postgres', q{UPDATE cs SET v = NULL});
$offsets = worker_log_offsets();
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('cs', 'v', 1, 500)});
is($ret, 0, 'the table is filled while a snapshot is held on a worker') or diag $err;
like($err, qr/NOTICE:  safe_backfill: shards on node 127\.0\.0\.1:$wport are filled without waiting after each HOT round: pid $holder_pid has held a snapshot for more than 1 s/,
	'its shards run without round waits, with a NOTICE naming the node and the session');
is(scalar(() = $err =~ /are filled without waiting after each HOT round/g), 1, 'said once');
like(slurp_file($workers[0]->logfile, $offsets->{$wport}),
	qr/\$1 = 'safe_backfill\.round_horizon_wait', \$2 = 'off'/, "turned off in its shards' sessions");
unlike($err, qr/127\.0\.0\.1:@{[$workers[1]->port]} are filled without waiting/, 'the other worker keeps its waits');
$holder{in} .= "COMMIT;\n\\q\n";
$holder{h}->finish;
is($coord->safe_psql('postgres', q{SELECT count(*) FROM cs WHERE v IS NULL}), '0', 'no NULL left');

# --- several shards at a time on each node ---------------------------------------
# A row of the first shard on a worker is locked: that shard's run waits
# for it (batch_lock_timeout = 0: for as long as it takes) while the second
# shard on the same worker is filled to the end beside it.
$coord->safe_psql('postgres', q{UPDATE cs SET v = NULL});
my ($first, $second, $port) = split /\|/, $coord->safe_psql('postgres', q{
	SELECT min(s.shardid), max(s.shardid), n.nodeport
	FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
	WHERE s.logicalrelid = 'cs'::regclass GROUP BY n.nodeport ORDER BY n.nodeport LIMIT 1});
my $wnode = $worker_by_port{$port};
my $gate = lock_rows($wnode, "cs_$first", 'true LIMIT 1');
my $bf = start_call(q{CALL safe_backfill('cs', 'v', 2, 500)},
	'safe_backfill.batch_lock_timeout = 0', 'safe_backfill.target_batch_ms = 0',
	'safe_backfill.citus_shards_per_node = 2');
wait_at_gate($gate, 1, q{application_name = 'safe_backfill shard'});
$wnode->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM safe_backfill_jobs
	WHERE table_name = 'public.cs_$second' AND value_text = '2' AND state = 'done'})
  or die "shard $second was not filled while shard $first waited on the same node";
pass("the second shard on a node is filled while the first waits: two run at the same time");
release_gate($gate);
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'the run completes once the row is released') or diag $bf->{err};
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v = 2) FROM cs}), '8000', 'every row has the value');

# --- workers => n asks for n shards at a time on each node ------------------------
$coord->safe_psql('postgres', q{UPDATE cs SET v = NULL});
($ret, $out, $err) = $coord->psql('postgres', q{
	SET safe_backfill.citus_shards_per_node = 1;
	CALL safe_backfill('cs', 'v', 3, 500, workers => 2)});
is($ret, 0, 'workers => 2 fills the table') or diag $err;
like($err, qr/filling 4 of its 4 shards on their nodes, 2 at a time on each node/,
	'two shards at a time on each node, whatever citus_shards_per_node says');

# --- by default as many shards at a time on a node as the coordinator has cores ---
# (citus_shards_per_node = 0, the default; set here so that a server whose
# cores happen to match a fixed default does not hide its absence)
chomp(my $cores = `getconf _NPROCESSORS_ONLN`);
$cores = 64 if $cores > 64;
ok($cores >= 1, "this machine has $cores cores");
$coord->safe_psql('postgres', q{UPDATE cs SET v = NULL});
($ret, $out, $err) = $coord->psql('postgres', q{
	SET safe_backfill.citus_shards_per_node = 0;
	CALL safe_backfill('cs', 'v', 4, 500)});
is($ret, 0, 'the table is filled with citus_shards_per_node = 0') or diag $err;
like($err, qr/filling 4 of its 4 shards on their nodes, $cores at a time on each node/,
	"as many shards at a time on each node as the coordinator has cores ($cores)");
is($coord->safe_psql('postgres', q{LOAD 'safe_backfill'; SHOW safe_backfill.citus_shards_per_node}), '0', 'which is the default');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM cs WHERE v IS DISTINCT FROM 4}), '0', 'every row has the value');

# --- one connection for each shard run at a time on a node ----------------------
# The extension's check, the shards' statistics and the shards' CALLs share
# the connections a run opens to a node: with one shard at a time on each
# node, one connection to each node in all.
for my $w (@workers)
{
	$w->safe_psql('postgres', q{ALTER SYSTEM SET log_connections = on});
	$w->reload;
}
$coord->safe_psql('postgres', q{UPDATE cs SET v = NULL});
$offsets = worker_log_offsets();
($ret, $out, $err) = $coord->psql('postgres', q{
	SET safe_backfill.citus_shards_per_node = 1;
	CALL safe_backfill('cs', 'v', 5, 500)});
is($ret, 0, 'the table is filled one shard at a time on each node') or diag $err;
$logged = worker_log_since($offsets);
for my $w (@workers)
{
	my $port = $w->port;
	my $conns = () = slurp_file($w->logfile, $offsets->{$port}) =~
	  /connection authorized: .*application_name=safe_backfill shard/g;
	is($conns, 1, "the run opened one connection to node $port");
}
is($coord->safe_psql('postgres', q{SELECT count(*) FROM cs WHERE v IS DISTINCT FROM 5}), '0', 'every row has the value');
# Right before each shard's CALL, the extension's check and the long
# snapshots on the node are read in one round trip (one query string).
my $calls = () = $logged =~ /: CALL [^\n]*safe_backfill\(/g;
my $before = () = $logged =~ /statement: SELECT e\.extversion[^\n]*; SELECT [^\n]*pg_stat_activity/g;
is($calls, 4, 'a CALL for each shard');
is($before, $calls, "each preceded by one query for the extension's check and the long snapshots");

$coord->stop;
$_->stop for @workers;
done_testing();

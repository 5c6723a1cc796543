# Citus: a distributed table is filled shard by shard on the nodes that hold
# the shards (with or without a primary key, never in one transaction), a
# reference table by the coordinator's batches (primary key required), lock
# bounds reach the workers, and a re-run after a cancel redoes only the
# shards not finished.
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

# The worker that holds a shard, and the shard's name there.
sub shard_placement
{
	my ($shardid) = @_;
	my ($port, $name) = split /\|/, $coord->safe_psql('postgres', qq{
		SELECT n.nodeport, shard_name(s.logicalrelid, s.shardid)
		FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
		JOIN pg_dist_node n USING (groupid) WHERE s.shardid = $shardid});
	return ($worker_by_port{$port}, $name);
}

sub shards_of
{
	my ($table) = @_;
	return split /\n/, $coord->safe_psql('postgres',
		"SELECT shardid FROM pg_dist_shard WHERE logicalrelid = '$table'::regclass ORDER BY shardid");
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

sub wait_for_stderr
{
	my ($run, $re, $what) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until ($run->{err} =~ $re)
	{
		die "timed out waiting for $what; stderr: $run->{err}" if time > $deadline;
		$run->{h}->pump_nb;
		select(undef, undef, undef, 0.05);
	}
}

$coord->safe_psql('postgres', q{
	SET citus.shard_count = 4;
	CREATE TABLE d (id int PRIMARY KEY, v text);
	SELECT create_distributed_table('d', 'id');
	INSERT INTO d SELECT generate_series(1, 20000);
	CREATE TABLE ct (tenant_id int, id int, v date, PRIMARY KEY (tenant_id, id));
	SELECT create_distributed_table('ct', 'tenant_id');
	INSERT INTO ct SELECT i % 37, i FROM generate_series(1, 10000) i;
	CREATE TABLE np (a int, v numeric);
	SELECT create_distributed_table('np', 'a');
	INSERT INTO np SELECT generate_series(1, 20000);
	CREATE TABLE r (id int PRIMARY KEY, v text);
	SELECT create_reference_table('r');
	INSERT INTO r SELECT generate_series(1, 3000);
	CREATE TABLE rn (a int, v text);
	SELECT create_reference_table('rn');
	INSERT INTO rn SELECT generate_series(1, 300);
});

# --- distributed by its primary key ---------------------------------------------
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('d', 'v', 'filled', 1000)});
is($ret, 0, 'a distributed table is filled');
like($err, qr/d\.v: distributed table, filling 4 of its 4 shards on their nodes/,
	'in per-shard mode');
my @relayed = $err =~ /NOTICE:  safe_backfill: d_(\d+)\.v: filled \d+ rows \(shard \d+ on 127\.0\.0\.1:(\d+)\)/g;
is(scalar(@relayed) / 2, 4, "each shard's run reports from its node");
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL), count(*) FILTER (WHERE v = 'filled') FROM d}),
	'0|20000', 'every row has the value, no NULL left');
my $shard_jobs = 0;
$shard_jobs += $_->safe_psql('postgres',
	q{SELECT count(*) FROM safe_backfill_jobs WHERE table_name LIKE '%d\_1%' AND state = 'done'}) for @workers;
is($shard_jobs, 4, "each shard was filled on its own node, by that node's safe_backfill");
is($coord->safe_psql('postgres', q{SELECT state FROM safe_backfill_jobs WHERE table_name = 'public.d'}),
	'done', "the coordinator's job for the table is done");

# --- composite key, distributed by tenant_id; a date read back exactly ---------
($ret, $out, $err) = $coord->psql('postgres', q{
	SET DateStyle = 'SQL, DMY';
	CALL safe_backfill('ct', 'v', '01/02/2024'::date, 500)});
is($ret, 0, 'a table with a composite key distributed by tenant_id is filled') or diag $err;
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL), count(*) FILTER (WHERE v = '2024-02-01') FROM ct}),
	'0|10000', 'with the value as the caller meant it, whatever the DateStyle');

# --- distributed without a primary key: batches in each shard ------------------
($ret, $out, $err) = $coord->psql('postgres', q{
	SET safe_backfill.target_batch_ms = 0;
	CALL safe_backfill('np', 'v', 1.50, 1000)});
is($ret, 0, 'a distributed table without a primary key is filled') or diag $err;
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL), count(*) FILTER (WHERE v = 1.50) FROM np}),
	'0|20000', 'every row has the value');
my @np_batches;
for my $w (@workers)
{
	push @np_batches, split /\n/, $w->safe_psql('postgres',
		q{SELECT batches FROM safe_backfill_jobs WHERE table_name LIKE '%np\_1%' AND iteration = 'ctid'});
}
is(scalar(@np_batches), 4, 'each shard was walked by block ranges on its node');
ok(!(grep { $_ < 3 } @np_batches), "in several batches each, never one transaction (@np_batches)");
for my $shard (shards_of('np'))
{
	my ($n, $name) = shard_placement($shard);
	cmp_ok($n->safe_psql('postgres', "SELECT count(DISTINCT xmin::text) FROM $name"), '>=', 3,
		"shard $shard was written by several transactions (xmin spread)");
}

# --- reference tables -----------------------------------------------------------
($ret, $out, $err) = $coord->psql('postgres', q{
	SET client_min_messages = debug1;
	CALL safe_backfill('r', 'v', 'ref', 500)});
is($ret, 0, 'a reference table with a primary key is filled') or diag $err;
like($err, qr/r\.v: one round per batch, no HOT rounds: table public\.r is a Citus table/,
	'in one statement per batch: the copies have tids of their own');
like($err, qr/no space reuse for a Citus reference table/, 'with a NOTICE that space is not reused');
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL) FROM r}), '0', 'no NULL left');
for my $w (@workers)
{
	is($w->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v = 'ref') FROM r}), '3000',
		'every copy of it has the value (port ' . $w->port . ')');
}
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('rn', 'v', 'ref', 100)});
isnt($ret, 0, 'a reference table without a primary key is refused');
like($err, qr/ERROR:  safe_backfill: rn\.v: a Citus reference table is filled in batches by its primary key, and it has none/,
	'with an error that says why');
is($coord->safe_psql('postgres', q{SELECT count(v) FROM rn}), '0', 'and the table is unchanged');
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('r', 'v', 'ref', 100, workers => 2)});
like($err, qr/workers => 2 is not supported for a Citus reference table/, 'workers > 1 is refused for a reference table');

# --- expression => is refused on Citus tables, before anything changes ----------
$coord->safe_psql('postgres', q{ALTER TABLE d ADD COLUMN e text; ALTER TABLE r ADD COLUMN e text});
for my $t ('d', 'r')
{
	($ret, $out, $err) = $coord->psql('postgres',
		"CALL safe_backfill('$t', 'e', expression => 'id::text', batch_size => 500)");
	isnt($ret, 0, "expression => on the Citus table $t is refused");
	like($err, qr/ERROR:  safe_backfill: $t\.e: expression => is not supported for a Citus distributed or reference table/,
		'with an error that says why');
	is($coord->safe_psql('postgres', "SELECT count(e) FROM $t"), '0', 'and the table is unchanged');
}

# --- safe_update and safe_delete refuse Citus tables, before anything changes --------
for my $t ('d', 'r')
{
	my $before = $coord->safe_psql('postgres', "SELECT count(*) || ' ' || count(e) FROM $t");
	($ret, $out, $err) = $coord->psql('postgres', "CALL safe_update('$t', 'e = id::text')");
	like($err, qr/ERROR:  safe_update does not support Citus tables yet/, "safe_update on the Citus table $t is refused");
	($ret, $out, $err) = $coord->psql('postgres', "CALL safe_delete('$t', 'id > 0')");
	like($err, qr/ERROR:  safe_delete does not support Citus tables yet/, "safe_delete on the Citus table $t is refused");
	is($coord->safe_psql('postgres', "SELECT count(*) || ' ' || count(e) FROM $t"), $before,
		'and the table is unchanged');
}

# A Citus local table (on the coordinator, in Citus's metadata) runs through
# Citus's executor: an expression run there works like on any table (its
# statements without parameters once crashed Citus's executor).
$coord->safe_psql('postgres', q{
	CREATE TABLE cl (id int PRIMARY KEY, e text);
	INSERT INTO cl SELECT generate_series(1, 2000);
	SELECT citus_add_local_table_to_metadata('cl');
});
($ret, $out, $err) = $coord->psql('postgres',
	q{CALL safe_backfill('cl', 'e', expression => 'id::text', batch_size => 500)});
is($ret, 0, 'expression => on a Citus local table runs') or diag($err);
is($coord->safe_psql('postgres', q{SELECT count(*) FROM cl WHERE e IS DISTINCT FROM id::text}), '0',
	'and fills every row with its own value');

# --- a row locked on a worker ---------------------------------------------------
# Per-shard mode: the shard's run on its node meets the row, times out after
# batch_lock_timeout, retries, and finishes once the row is released.
$coord->safe_psql('postgres', q{UPDATE d SET v = NULL});
my ($locked_shard) = $coord->safe_psql('postgres', q{SELECT get_shard_id_for_distribution_column('d', 5000)});
my ($wnode, $wshard) = shard_placement($locked_shard);
my $gate = lock_rows($wnode, $wshard, 'id = 5000');
my $bf = start_call(q{CALL safe_backfill('d', 'v', 'again', 1000)},
	'safe_backfill.batch_lock_timeout = 200', 'safe_backfill.target_batch_ms = 0');
wait_for_stderr($bf, qr/waited more than 200 ms for a row lock and was rolled back; retrying .*\(shard $locked_shard on/,
	'the batch that meets the locked row on its worker to time out and retry');
pass('a batch meeting a row locked on a worker times out after batch_lock_timeout and is retried');
release_gate($gate);
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'the run completes once the row is released') or diag $bf->{err};
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL) FROM d}), '0', 'no NULL left');

# Coordinator mode: the lock timeout reaches the copies on the workers too.
$coord->safe_psql('postgres', q{UPDATE r SET v = NULL});
my ($rshard) = $coord->safe_psql('postgres', q{SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'r'::regclass});
$gate = lock_rows($workers[0], "r_$rshard", 'id = 1500');
$bf = start_call(q{CALL safe_backfill('r', 'v', 'again', 500)},
	'safe_backfill.batch_lock_timeout = 200', 'safe_backfill.target_batch_ms = 0');
wait_for_stderr($bf, qr/r\.v: batch \d+ waited more than 200 ms for a row lock and was rolled back/,
	'the reference table batch to time out on the worker copy');
pass("a reference table's batch meeting a row locked on a worker times out too");
release_gate($gate);
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'and the run completes after the release') or diag $bf->{err};
is($workers[0]->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL) FROM r}), '0',
	'the copy on that worker is filled');

# --- safe_set_not_null with a conflicting lock on a worker ----------------------
# A session on a worker reads a shard in an open transaction.  The promotion
# waits for it without holding ACCESS EXCLUSIVE on the coordinator: a plain
# coordinator SELECT, bounded by lock_timeout = 2 s (10x the call's
# lock_timeout), keeps getting through while it waits.
my ($sshard) = (shards_of('d'))[0];
my ($snode, $sname) = shard_placement($sshard);
$gate = lock_rows($snode, $sname, 'true LIMIT 1');
$bf = start_call(q{CALL safe_set_not_null('d', 'v', lock_timeout => '200ms', max_attempts => 100)});
wait_for_stderr($bf, qr/waits for sessions on the shards' nodes: 127\.0\.0\.1:\d+ pid $gate->{pid}/,
	'safe_set_not_null to wait for the session on the worker');
pass('safe_set_not_null sees the conflicting session on the worker');
for my $i (1 .. 5)
{
	($ret, $out, $err) = $coord->psql('postgres', q{SET lock_timeout = '2s'; SELECT count(*) FROM d});
	last if $ret != 0;
	select(undef, undef, undef, 0.2);
}
is($ret, 0, 'coordinator SELECTs are not queued behind ACCESS EXCLUSIVE while it waits') or diag $err;
release_gate($gate);
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'the promotion completes once the worker session is gone') or diag $bf->{err};
is($coord->safe_psql('postgres', q{SELECT attnotnull FROM pg_attribute WHERE attrelid = 'd'::regclass AND attname = 'v'}),
	't', 'the column is NOT NULL on the coordinator');
is($snode->safe_psql('postgres', "SELECT attnotnull FROM pg_attribute WHERE attrelid = '$sname'::regclass AND attname = 'v'"),
	't', 'and on the shards (Citus propagated it)');

# --- cancel, then a re-run redoes only the unfinished shards ---------------------
# One shard on worker 1 is held at a locked row (batch_lock_timeout = 0: its
# run waits); meanwhile every other shard is finished (two run at a time on
# each node: the other one on worker 1 too).  Then the call is cancelled;
# the re-run fills only the shard left.
$coord->safe_psql('postgres', q{
	SET citus.shard_count = 4;
	CREATE TABLE c (id int PRIMARY KEY, v text);
	SELECT create_distributed_table('c', 'id');
	INSERT INTO c SELECT generate_series(1, 8000);
});
my @c_shards = shards_of('c');
my %c_node = map { my ($n) = shard_placement($_); ($_ => $n->port) } @c_shards;
my ($held) = grep { $c_node{$_} == $workers[0]->port } @c_shards;
my @other_node = grep { $c_node{$_} == $workers[1]->port } @c_shards;
my ($hnode, $hname) = shard_placement($held);
$gate = lock_rows($hnode, $hname, 'true');
$bf = start_call(q{CALL safe_backfill('c', 'v', 'c', 500)},
	'safe_backfill.batch_lock_timeout = 0', 'safe_backfill.target_batch_ms = 0',
	'safe_backfill.progress_interval = 0', 'safe_backfill.citus_shards_per_node = 2');
wait_at_gate($gate, 1, q{application_name = 'safe_backfill shard'});
my $done_sql = q{SELECT count(*) FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
	WHERE j.table_name = 'public.c' AND r.done};
$coord->poll_query_until('postgres', "SELECT ($done_sql) = " . (scalar(@c_shards) - 1))
  or die 'the shards not held did not finish';
my $done_before = $coord->safe_psql('postgres', $done_sql);
$coord->safe_psql('postgres',
	q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL safe_backfill(''c''%'});
$bf->{h}->finish;
isnt($bf->{h}->result(0), 0, 'the cancelled call fails');
like($bf->{err}, qr/canceling statement due to user request/, 'because of the cancel');
release_gate($gate);
$hnode->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'safe_backfill shard'})
  or die 'the shard run on the worker did not stop';
is($hnode->safe_psql('postgres', "SELECT state FROM safe_backfill_jobs WHERE table_name LIKE '%c\\_$held' ORDER BY id DESC LIMIT 1"),
	'failed', 'the cancel reached the shard run on its worker, recorded there as failed');
is($coord->safe_psql('postgres', q{SELECT state FROM safe_backfill_jobs WHERE table_name = 'public.c' ORDER BY id DESC LIMIT 1}),
	'failed', "and the coordinator's job as failed");

($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('c', 'v', 'c', 500)});
is($ret, 0, 'the re-run completes') or diag $err;
my $left = 4 - $done_before;
like($err, qr/resuming run \d+, $left of its shards unfinished, each from where it stopped/, "it resumes with the $left unfinished shards");
my @rerun = $err =~ /\(shard (\d+) on 127/g;
my %rerun = map { ($_ => 1) } @rerun;
ok(!(grep { $rerun{$_} } @other_node), 'the shards finished before were not filled again')
  or diag "re-run shards: @rerun";
ok($rerun{$held}, 'the interrupted shard was');
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL) FROM c}), '0', 'no NULL left');

# --- another safe_backfill version on a worker: a clear error before anything ---
# (Citus forbids DROP EXTENSION on a worker; the catalog says another version.)
$coord->safe_psql('postgres', q{UPDATE d SET v = 'x'; ALTER TABLE d ALTER v DROP NOT NULL; UPDATE d SET v = NULL WHERE id <= 100});
my $sb_version = $workers[1]->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'safe_backfill'});
$workers[1]->safe_psql('postgres', q{UPDATE pg_extension SET extversion = '0.9' WHERE extname = 'safe_backfill'});
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('d', 'v', 'y', 500)});
isnt($ret, 0, 'a worker with another safe_backfill version stops the run');
like($err, qr/ERROR:  safe_backfill: node 127\.0\.0\.1:\d+ has safe_backfill version 0\.9, the coordinator version \Q$sb_version\E/,
	'with an error naming the node and both versions');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM d WHERE v IS NULL}), '100',
	'before any shard was filled');
$workers[1]->safe_psql('postgres', qq{UPDATE pg_extension SET extversion = '$sb_version' WHERE extname = 'safe_backfill'});

# --- a rebalance scheduled: refused before anything ------------------------------
# A background job row without tasks stands for a rebalance that was scheduled.
$coord->safe_psql('postgres',
	q{INSERT INTO pg_dist_background_job (state, job_type, description) VALUES ('scheduled', 'rebalance', 'test')});
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('d', 'v', 'y', 500)});
isnt($ret, 0, 'a scheduled rebalance stops the run');
like($err, qr/ERROR:  safe_backfill: d\.v: a Citus rebalance or shard move is in progress/,
	'with an error that says so');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM d WHERE v IS NULL}), '100',
	'and the table is unchanged');
$coord->safe_psql('postgres', q{DELETE FROM pg_dist_background_job});
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('d', 'v', 'y', 500)});
is($ret, 0, 'once it is over, the run goes ahead') or diag $err;
is($coord->safe_psql('postgres', q{SELECT count(*) FROM d WHERE v IS NULL}), '0', 'no NULL left');

# --- a shard's name is never SQL ---------------------------------------------------
# A role that owns a schema names its distributed table so that the shard's
# quoted name, pasted into a command, would end the literal and run its own
# statement as whoever calls the promotion.  The promotion must treat the
# name as a value on every node: the attacker is not superuser anywhere after.
my $evil = q{'::pg_catalog.char::int;ALTER ROLE alice SUPERUSER--};
(my $evil_sql = $evil) =~ s/'/''/g;
$coord->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE SCHEMA alice_s AUTHORIZATION alice;
	GRANT USAGE ON SCHEMA public TO alice;
});
$coord->safe_psql('postgres', qq{
	SET ROLE alice;
	SET citus.shard_count = 2;
	CREATE TABLE alice_s."$evil" (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('alice_s."$evil_sql"', 'id');
	INSERT INTO alice_s."$evil" SELECT g, g FROM generate_series(1, 100) g;
});
($ret, $out, $err) = $coord->psql('postgres',
	qq{CALL safe_set_not_null('alice_s."$evil_sql"', 'v', lock_timeout => '1s')});
is($ret, 0, 'the promotion of the table with a hostile name completes') or diag $err;
for my $n ($coord, @workers)
{
	is($n->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}), 'f',
		'the table\'s owner did not become superuser (port ' . $n->port . ')');
}

# A name with a quote, no attack: the holders of its shards' locks on the
# workers are still seen (not skipped because the probe failed there).
$coord->safe_psql('postgres', q{
	SET citus.shard_count = 2;
	CREATE TABLE "o'brien" (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('"o''brien"', 'id');
	INSERT INTO "o'brien" SELECT g, g FROM generate_series(1, 100) g;
});
my ($oshard) = shards_of(q{"o''brien"});
my ($onode, $oname) = shard_placement($oshard);
$gate = lock_rows($onode, $oname, 'true LIMIT 1');
($ret, $out, $err) = $coord->psql('postgres',
	q{CALL safe_set_not_null('"o''brien"', 'v', lock_timeout => '200ms', max_attempts => 2)});
isnt($ret, 0, "while a worker's session holds a lock on a shard of o'brien, the promotion does not go ahead");
like($err, qr/could not get ACCESS EXCLUSIVE lock .* after 2 attempts.*\n.*DETAIL:  Sessions holding locks on relation "o'brien": sessions on the shards' nodes: 127\.0\.0\.1:\d+ pid $gate->{pid}\b/,
	"it names the worker's session that holds the shard's lock") or diag $err;
release_gate($gate);
($ret, $out, $err) = $coord->psql('postgres',
	q{CALL safe_set_not_null('"o''brien"', 'v', lock_timeout => '1s')});
is($ret, 0, 'once that session is gone the promotion completes') or diag $err;

# A node that cannot answer the probe is an error that names it, never a
# node skipped.  (The shard's table is gone on its worker.)
$coord->safe_psql('postgres', q{
	SET citus.shard_count = 2;
	CREATE TABLE probe_t (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('probe_t', 'id');
	INSERT INTO probe_t SELECT g, g FROM generate_series(1, 100) g;
});
my ($pshard) = shards_of('probe_t');
my ($pnode, $pname) = shard_placement($pshard);
$pnode->safe_psql('postgres', "SET citus.enable_manual_changes_to_shards = on; ALTER TABLE $pname RENAME TO probe_gone");
($ret, $out, $err) = $coord->psql('postgres',
	q{CALL safe_set_not_null('probe_t', 'v', lock_timeout => '200ms')});
isnt($ret, 0, 'a node where the lock holders cannot be read stops the promotion');
like($err, qr/ERROR:  safe_backfill: probe_t\.v: could not read the lock holders of its shards on node 127\.0\.0\.1:@{[$pnode->port]}/,
	'with an error naming the node') or diag $err;
like($err, qr/DETAIL:  .*does not exist/, 'and what failed there') or diag $err;
is($coord->safe_psql('postgres', q{SELECT attnotnull FROM pg_attribute WHERE attrelid = 'probe_t'::regclass AND attname = 'v'}),
	'f', 'the column is unchanged');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'probe_t'::regclass AND contype = 'c'}),
	'0', 'and no CHECK constraint was left');
$pnode->safe_psql('postgres', "SET citus.enable_manual_changes_to_shards = on; ALTER TABLE probe_gone RENAME TO $pname");

# --- the promotion waits for the holders it saw, not for a quiet moment -----------
# Clients run point queries on the table all along, each a new lock holder
# on a shard (each holds it for a while: there is hardly ever a moment when
# no shard has a holder).  A session on a worker holds a lock on a shard in
# an open transaction: the promotion waits for that one, and completes once
# it commits, however busy the table stays.
$coord->safe_psql('postgres', q{
	SET citus.shard_count = 4;
	CREATE TABLE busy (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('busy', 'id');
	INSERT INTO busy SELECT g, g FROM generate_series(1, 1000) g;
});
my $script = PostgreSQL::Test::Utils::tempdir() . '/point.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set id random(1, 1000)\nSELECT v, pg_sleep(0.01) FROM busy WHERE id = :id;\n");
my ($pb_out, $pb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-t', '100000000', '-f', $script,
	  '-h', $coord->host, '-p', $coord->port, 'postgres' ],
	'>', \$pb_out, '2>', \$pb_err);
$coord->poll_query_until('postgres',
	q{SELECT count(*) >= 4 FROM pg_stat_activity WHERE query LIKE 'SELECT v, pg_sleep(0.01) FROM busy%'})
  or die "the point query clients did not start: $pb_err";
my ($bshard) = shards_of('busy');
my ($bnode, $bname) = shard_placement($bshard);
$gate = lock_rows($bnode, $bname, 'true LIMIT 1');
$bf = start_call(q{CALL safe_set_not_null('busy', 'v', lock_timeout => '500ms', max_attempts => 5)});
wait_for_stderr($bf, qr/waits for sessions on the shards' nodes: [^\n]*\bpid $gate->{pid}\b/,
	'the promotion to wait for the session holding the shard lock');
pass('the promotion waits for the session that held a shard lock before the step');
is($coord->safe_psql('postgres', q{SELECT attnotnull FROM pg_attribute WHERE attrelid = 'busy'::regclass AND attname = 'v'}),
	'f', 'and has not promoted the column while that session holds its lock');
release_gate($gate);
$bf->{h}->finish;
is($bf->{h}->result(0), 0, 'it completes after that session commits, with the point queries still running')
  or diag $bf->{err};
ok($pgbench->pumpable, 'the point query clients were running all along') or diag $pb_err;
$pgbench->kill_kill;
is($coord->safe_psql('postgres', q{SELECT attnotnull FROM pg_attribute WHERE attrelid = 'busy'::regclass AND attname = 'v'}),
	't', 'the column is NOT NULL');

# --- no kept plan is left per shard in the caller's session ----------------------
# (PostgreSQL's own foreign key check of the ranges' job, one per session,
# is not ours.)
$coord->safe_psql('postgres', q{
	SET citus.shard_count = 4;
	CREATE TABLE kp (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('kp', 'id');
	INSERT INTO kp SELECT generate_series(1, 400);
});
($ret, $out, $err) = $coord->psql('postgres', q{
	CALL safe_backfill('kp', 'v', 1, 100);
	SELECT COALESCE(string_agg(ident, ' | '), 'none') FROM pg_backend_memory_contexts
	WHERE name = 'CachedPlanSource' AND (ident LIKE '%safe_backfill_job%' OR ident LIKE '%kp%')
	AND ident NOT LIKE 'SELECT 1 FROM ONLY % FOR KEY SHARE OF x'});
is($ret, 0, 'the distributed table is filled') or diag $err;
is($out, 'none', 'and the call leaves no kept plan in the session');

# --- the shard's CALL runs the extension's procedure, nothing else ----------------
# A role that may create routines in the extension's schema on a worker
# adds a safe_backfill taking text: for a text column, a better match for
# the shard's CALL (run as the caller) than the extension's anycompatible.
$coord->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	SET citus.shard_count = 2;
	CREATE TABLE hj (id int PRIMARY KEY, v text);
	SELECT create_distributed_table('hj', 'id');
	INSERT INTO hj SELECT generate_series(1, 200);
});
$workers[0]->safe_psql('postgres', q{SET citus.enable_ddl_propagation = off; GRANT CREATE ON SCHEMA public TO mallory});
$workers[0]->safe_psql('postgres', q{
	SET ROLE mallory;
	SET citus.enable_ddl_propagation = off;
	CREATE PROCEDURE public.safe_backfill(tbl regclass, col name, value text,
		batch_size integer DEFAULT 0, pause_ms integer DEFAULT 0, set_not_null boolean DEFAULT false,
		target_batch_ms integer DEFAULT 0, workers integer DEFAULT 1, resume boolean DEFAULT true)
	LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; END $$;
});
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('hj', 'v', 'x', 100)});
isnt($ret, 0, "a worker whose safe_backfill schema holds another role's safe_backfill stops the run");
like($err, qr/ERROR:  safe_backfill: node 127\.0\.0\.1:@{[$workers[0]->port]} has 1 routines called safe_backfill in schema public that are not the extension's/,
	'with an error naming the node') or diag $err;
is($workers[0]->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'the routine was not run');
is($coord->safe_psql('postgres', q{SELECT count(v) FROM hj}), '0', 'and the table is unchanged');
$workers[0]->safe_psql('postgres', q{
	SET citus.enable_ddl_propagation = off;
	DROP PROCEDURE public.safe_backfill(regclass, name, text, integer, integer, boolean, integer, integer, boolean);
	REVOKE CREATE ON SCHEMA public FROM mallory});

# --- shard ids beyond the int range are recorded as they are ----------------------
# (Last: every table created after this gets such shard ids.)
$coord->safe_psql('postgres', q{
	SET citus.shard_count = 4;
	ALTER SEQUENCE pg_dist_shardid_seq RESTART 4294967296;
	CREATE TABLE bigid (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('bigid', 'id');
	INSERT INTO bigid SELECT generate_series(1, 400);
});
($ret, $out, $err) = $coord->psql('postgres', q{CALL safe_backfill('bigid', 'v', 1, 100)});
is($ret, 0, 'a distributed table whose shard ids exceed the int range is filled') or diag $err;
is($coord->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE v IS NULL) FROM bigid}), '0', 'no NULL left');
is($coord->safe_psql('postgres', q{
	SELECT string_agg(r.shard_id::text || ':' || r.done, ',' ORDER BY r.shard_id)
	  = (SELECT string_agg(shardid::text || ':true', ',' ORDER BY shardid) FROM pg_dist_shard
	     WHERE logicalrelid = 'bigid'::regclass)
	FROM safe_backfill_job_ranges r JOIN safe_backfill_jobs j ON j.id = r.job_id
	WHERE j.table_name = 'public.bigid'}), 't',
	"the job's ranges record each shard by its own id, all done");

done_testing();

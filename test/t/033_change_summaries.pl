# What safe_update's and safe_delete's summaries say that regress tests
# cannot show (their DETAIL has timings): a dry run names its fullest batch,
# a delete reports the space its batches freed, pruned behind the walk and
# recorded in the free space map, and a run says how many rows still match
# after its last batch.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('change_summaries');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE events (id int PRIMARY KEY, old boolean, payload text);
	INSERT INTO events SELECT g, g % 4 <> 0, repeat('x', 200) FROM generate_series(1, 20000) g;
});
# contrib's pg_freespacemap, where it is installed (not in every build)
$node->safe_psql('postgres', q{
	DO $$ BEGIN
		IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_freespacemap') THEN
			CREATE EXTENSION pg_freespacemap;
		END IF;
	END $$;
});
my $has_fsm = $node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_freespacemap'});

my ($ret, $out, $err) = $node->psql('postgres',
	q{CALL safe_delete('events', 'old', batch_size => 1000, dry_run => true)});
like($err, qr/dry run: 15000 rows match; nothing was changed/, 'a dry run counts the rows that match');
like($err, qr/the fullest batch would change 750 rows/, 'and names its fullest batch');
is($node->safe_psql('postgres', 'SELECT count(*) FROM events'), '20000', 'and deletes nothing');

my $fsm_before = $has_fsm ? $node->safe_psql('postgres',
	q{SELECT coalesce(sum(avail), 0) FROM pg_freespace('events')}) : 0;
($ret, $out, $err) = $node->psql('postgres',
	q{CALL safe_delete('events', 'old', batch_size => 1000)});
like($err, qr/safe_delete: events: deleted 15000 rows/, 'the delete deletes the rows that match');
like($err, qr/found no row that matches/, 'and a fresh count finds none left');
ok($err =~ /The (\d+) pages the batches deleted from were pruned behind the walk and have ([\d.]+) MB free/,
	'and it reports the space the batches freed');
my ($pages, $mb) = ($1 // 0, $2 // 0);
cmp_ok($pages, '>', 0, "pages pruned: $pages");
cmp_ok($mb, '>', 2, "free after pruning: $mb MB (15000 rows of ~230 bytes deleted)");
SKIP:
{
	skip 'pg_freespacemap is not installed', 1 unless $has_fsm;
	my $fsm_after = $node->safe_psql('postgres',
		q{SELECT coalesce(sum(avail), 0) FROM pg_freespace('events')});
	cmp_ok($fsm_after - $fsm_before, '>', 2 * 1024 * 1024,
		"the free space map has it without a VACUUM ($fsm_before -> $fsm_after bytes)");
}

# rows written behind the walk are counted, not changed
$node->safe_psql('postgres', q{
	CREATE TABLE marks (id int PRIMARY KEY, flag boolean);
	INSERT INTO marks SELECT g, true FROM generate_series(1, 100) g;
	CREATE FUNCTION mark_behind(int) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		-- the batch over ids 51..100 sets a row of the first batch back
		IF $1 = 60 THEN UPDATE marks SET flag = true WHERE id = 1; END IF;
		RETURN true;
	END $$;
});
($ret, $out, $err) = $node->psql('postgres',
	q{CALL safe_update('marks', 'flag = false', 'flag AND mark_behind(id)', batch_size => 50)});
like($err, qr/updated 100 rows/, 'every row matched when its batch ran');
like($err, qr/found 1 row that matches: written behind the walk while it ran/,
	'the row set back behind the walk is counted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM marks WHERE flag'), '1',
	'and left as it was set');

$node->stop;
done_testing();

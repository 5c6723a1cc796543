# The jobs tables survive pg_dump and restore: their rows and their id
# sequence are dumped with the extension (pg_extension_config_dump), so in
# the restored database the next runs get new ids instead of failing on
# safe_backfill_jobs_pkey, and the records keep their privacy (no PUBLIC).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION safe_backfill;
	CREATE TABLE t (id int PRIMARY KEY, a text, b text, c text);
	INSERT INTO t SELECT generate_series(1, 20000);
});
# three runs, one of them in parallel ranges (safe_backfill_job_ranges rows)
for my $call ("CALL safe_backfill('t', 'a', 'x', 1000)",
			  "CALL safe_backfill('t', 'b', 'y', 1000, workers => 2)",
			  "CALL safe_backfill('t', 'c', 'z', 1000)")
{
	$node->safe_psql('postgres', "SET client_min_messages = warning; $call");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM safe_backfill_jobs'), '3',
	'three runs recorded before the dump');
my $ranges = $node->safe_psql('postgres', 'SELECT count(*) FROM safe_backfill_job_ranges');

my $tempdir = PostgreSQL::Test::Utils::tempdir;
my $dump = "$tempdir/dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ],
	'pg_dump of a database with runs recorded');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores without error (CREATE EXTENSION is part of it)');

is($node->safe_psql('restored', 'SELECT count(*) FROM safe_backfill_jobs'), '3',
	'the runs are restored');
is($node->safe_psql('restored', 'SELECT count(*) FROM safe_backfill_job_ranges'), $ranges,
	'the ranges of the parallel run are restored');
is($node->safe_psql('restored',
		q{SELECT count(*) FROM information_schema.table_privileges
		  WHERE table_name IN ('safe_backfill_jobs', 'safe_backfill_job_ranges') AND grantee = 'PUBLIC'}),
	'0', 'the jobs tables are still not readable by PUBLIC');

# the next runs in the restored database record themselves with new ids
$node->safe_psql('restored', q{
	ALTER TABLE t ADD COLUMN d text, ADD COLUMN e text;
	SET client_min_messages = warning;
	CALL safe_backfill('t', 'd', 'after', 1000);
});
$node->safe_psql('restored',
	"SET client_min_messages = warning; CALL safe_backfill('t', 'e', 'after', 1000, workers => 2)");
is($node->safe_psql('restored', 'SELECT count(*) FROM t WHERE d IS NULL OR e IS NULL'), '0',
	'backfills in the restored database fill every row');
is($node->safe_psql('restored',
		q{SELECT string_agg(state, ',' ORDER BY id) FROM safe_backfill_jobs WHERE id > 3}),
	'done,done', 'and are recorded after the restored runs, with new ids');

$node->stop;
done_testing();

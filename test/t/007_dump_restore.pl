# The jobs tables hold per-cluster run state, not schema: their rows key runs
# by the table's OID, which a restore renumbers (a restored record would
# point at nothing, or at another table whose new OID matches, and a resume
# would start at that table's position and skip rows), and they hold the
# values written, expressions and errors, which are private to their roles.
# So neither their rows nor their id sequence are dumped: a restored database
# starts with an empty history.  Whoever can dump the rest of a database can
# dump one that merely has the extension (a non-superuser database owner
# could not: "permission denied for sequence safe_backfill_jobs_id_seq").
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
# the database belongs to a role that is not a superuser; a superuser
# created the extension in it
$node->safe_psql('postgres', q{
	CREATE ROLE regress_app LOGIN;
	CREATE DATABASE appdb OWNER regress_app;
});
$node->safe_psql('appdb', 'CREATE EXTENSION safe_backfill');
my $app = $node->connstr('appdb') . ' user=regress_app';

sub app_psql
{
	my ($sql, $name) = @_;
	my ($ret, $out, $err) = $node->psql('appdb', $sql, extra_params => [ '-U', 'regress_app' ]);
	is($ret, 0, $name) or diag $err;
	return $out;
}

app_psql(q{
	CREATE TABLE t (id int PRIMARY KEY, a text, b text, c text, d text);
	INSERT INTO t SELECT generate_series(1, 20000);
	CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN RAISE EXCEPTION 'ERROR-TEXT-5150 for row %', NEW.id; END $$;
}, 'the owner creates a table');
# a value run, an expression run, a parallel run (rows in
# safe_backfill_job_ranges) and a failed run
app_psql(q{SET client_min_messages = warning; CALL safe_backfill('t', 'a', 'VALUE-WRITTEN-4242'::text, 1000)}, 'a value run');
app_psql(q{SET client_min_messages = warning;
	CALL safe_backfill('t', 'b', expression => $$pg_catalog.md5('EXPRESSION-TEXT-9731' || id)$$, batch_size => 1000)}, 'an expression run');
app_psql(q{SET client_min_messages = warning; CALL safe_backfill('t', 'c', 'parallel'::text, 1000, workers => 2)}, 'a parallel run');
app_psql(q{CREATE TRIGGER refuse BEFORE UPDATE OF d ON t FOR EACH ROW EXECUTE FUNCTION refuse()}, 'a trigger refuses every update of d');
my ($ret, $out, $err) = $node->psql('appdb',
	q{SET client_min_messages = warning; CALL safe_backfill('t', 'd', 'never'::text, 1000)},
	extra_params => [ '-U', 'regress_app' ]);
like($err, qr/ERROR-TEXT-5150/, 'the failed run failed');
# the value written is not in the table's data any more, only in its run
app_psql(q{DROP TRIGGER refuse ON t; DROP FUNCTION refuse(); ALTER TABLE t DROP COLUMN a},
	'column a and the trigger are dropped');
is($node->safe_psql('appdb', 'SELECT count(*) FROM safe_backfill_jobs'), '4', 'four runs recorded before the dump');
cmp_ok($node->safe_psql('appdb', 'SELECT count(*) FROM safe_backfill_job_ranges'), '>', 0,
	'the parallel run recorded its ranges');

my $tempdir = PostgreSQL::Test::Utils::tempdir;
my $dump = "$tempdir/dump.sql";
my ($stdout, $stderr);
my $ok = IPC::Run::run([ 'pg_dump', '-d', $app, '-f', $dump ], '>', \$stdout, '2>', \$stderr);
ok($ok, 'the database owner, not a superuser, can pg_dump the database') or diag $stderr;
my $text = -e $dump ? slurp_file($dump) : '';
for my $secret ('VALUE-WRITTEN-4242', 'EXPRESSION-TEXT-9731', 'ERROR-TEXT-5150')
{
	unlike($text, qr/\Q$secret\E/, "the dump does not contain $secret, a run's record");
}
unlike($text, qr/(COPY|INSERT INTO) [\w.]*safe_backfill_(jobs|job_ranges)\b/, 'nor any row of the jobs tables');
unlike($text, qr/setval\([^)]*safe_backfill_jobs_id_seq/, 'nor the position of their id sequence');
like($text, qr/CREATE EXTENSION IF NOT EXISTS safe_backfill\b/, 'the extension is in the dump');
like($text, qr/COPY public\.t \(/, 'and the table with its data');

# a superuser's dump of the same database: no run state either
$node->command_ok([ 'pg_dump', '-d', $node->connstr('appdb'), '-f', "$tempdir/super.sql" ],
	'a superuser can pg_dump it too');
unlike(slurp_file("$tempdir/super.sql"), qr/VALUE-WRITTEN-4242|EXPRESSION-TEXT-9731|ERROR-TEXT-5150/,
	"and a superuser's dump holds no run's record either");

# restore by the owner into a database where a superuser created the
# extension (it is not trusted): the dump's CREATE EXTENSION IF NOT EXISTS
# finds it; only its COMMENT ON EXTENSION fails, as for any extension a
# superuser created
$node->safe_psql('postgres', 'CREATE DATABASE restored OWNER regress_app');
$node->safe_psql('restored', 'CREATE EXTENSION safe_backfill');
$ok = IPC::Run::run(
	[ 'psql', '-X', '-q', '-d', $node->connstr('restored') . ' user=regress_app', '-f', $dump ],
	'>', \$stdout, '2>', \$stderr) if -e $dump;
my @errors = grep { /ERROR/ } split /\n/, $stderr // '';
ok($ok && !grep({ !/ERROR:  must be owner of extension safe_backfill$/ } @errors),
	'the owner restores the dump (no error but the COMMENT ON EXTENSION)') or diag $stderr;
is($node->safe_psql('restored', 'SELECT count(*) FROM t WHERE b IS NULL OR c IS NULL'), '0',
	'the restored table has its data');
is($node->safe_psql('restored', 'SELECT count(*) FROM safe_backfill_jobs'), '0',
	'the restored database has no run records (none pointing at other tables by old OIDs)');
is($node->safe_psql('restored', 'SELECT count(*) FROM safe_backfill_job_ranges'), '0', 'and no ranges');
is($node->safe_psql('restored',
		q{SELECT count(*) FROM information_schema.table_privileges
		  WHERE table_name IN ('safe_backfill_jobs', 'safe_backfill_job_ranges') AND grantee = 'PUBLIC'}),
	'0', 'the jobs tables are still not readable by PUBLIC');

# new runs in the restored database work and are recorded
($ret, $out, $err) = $node->psql('restored', q{
	SET client_min_messages = warning;
	CALL safe_backfill('t', 'd', 'after'::text, 1000);
	ALTER TABLE t ADD COLUMN e text;
	CALL safe_backfill('t', 'e', 'after'::text, 1000, workers => 2);
}, extra_params => [ '-U', 'regress_app' ]);
is($ret, 0, 'the owner runs backfills in the restored database') or diag $err;
is($node->safe_psql('restored', 'SELECT count(*) FROM t WHERE d IS NULL OR e IS NULL'), '0',
	'they fill every row');
is($node->safe_psql('restored',
		q{SELECT string_agg(column_name || ':' || state || ':' || rows_done, ',' ORDER BY id) FROM safe_backfill_jobs}),
	'd:done:20000,e:done:20000', 'and are recorded, as new runs, with their counts');

$node->stop;
done_testing();

# ALTER EXTENSION safe_backfill UPDATE: from every older version shipped, the
# update scripts give exactly the objects a fresh install of the default
# version has (columns, constraints, indexes, view and procedure
# definitions, privileges, comments), the records of earlier runs survive,
# and a run after the update works and resumes what was interrupted before
# it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'safe_backfill'});
my @older = split /\n/, $node->safe_psql('postgres', qq{
	SELECT version FROM pg_available_extension_versions
	WHERE name = 'safe_backfill' AND version <> '$default' ORDER BY version});
ok(@older > 0, "an older version to update from ships with $default");

# Every object of the extension, described so that two databases compare
# equal exactly when their definitions do.
my $describe = q{
	WITH members AS (
		SELECT d.classid, d.objid FROM pg_depend d
		JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
		WHERE e.extname = 'safe_backfill' AND d.deptype = 'e')
	SELECT pg_describe_object(m.classid, m.objid, 0) || ': ' || coalesce(CASE
		WHEN m.classid = 'pg_proc'::regclass THEN
			pg_get_functiondef(m.objid) || ' acl ' || coalesce((SELECT proacl::text FROM pg_proc WHERE oid = m.objid), '-')
		WHEN m.classid = 'pg_class'::regclass THEN
			(SELECT c.relkind::text || ' acl ' || coalesce(c.relacl::text, '-') || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
			 || ' cols ' || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
			       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
			       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''), ', ' ORDER BY a.attnum)
			     FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
			     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
			 || ' cons ' || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), '; ' ORDER BY pg_get_constraintdef(k.oid))
			     FROM pg_constraint k WHERE k.conrelid = c.oid), '')
			 || ' idx ' || coalesce((SELECT string_agg(regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''), '; ' ORDER BY 1)
			     FROM pg_index i WHERE i.indrelid = c.oid), '')
			 || ' view ' || coalesce(pg_get_viewdef(c.oid), '-')
			 || ' opts ' || coalesce(c.reloptions::text, '-')
			 FROM pg_class c WHERE c.oid = m.objid)
		ELSE '' END, '')
	FROM members m ORDER BY 1};

$node->safe_psql('postgres', 'CREATE EXTENSION safe_backfill');
my $fresh = $node->safe_psql('postgres', $describe);
my $config = $node->safe_psql('postgres',
	q{SELECT extconfig::regclass[]::text FROM pg_extension WHERE extname = 'safe_backfill'});

for my $from (@older)
{
	my $db = "from_" . ($from =~ s/\W/_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
		CREATE EXTENSION safe_backfill VERSION '$from';
		CREATE TABLE t (id int PRIMARY KEY, a text, b text);
		INSERT INTO t SELECT generate_series(1, 3000);
		SET client_min_messages = warning;
		CALL safe_backfill('t', 'a', 'done before', 500);
	});
	# a run interrupted under the old version: it failed on a row, half done
	$node->psql($db, q{
		CREATE FUNCTION stop_at_2000() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.id = 2000 THEN RAISE EXCEPTION 'stop'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER stop BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION stop_at_2000();
		SET client_min_messages = warning;
		CALL safe_backfill('t', 'b', 'resumed', 500);
	});
	my $kept = $node->safe_psql($db, q{SELECT count(b) FROM t});
	cmp_ok($kept, '>', 0, "$from: a run stopped half-way before the update");

	$node->safe_psql($db, 'ALTER EXTENSION safe_backfill UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'safe_backfill'}),
		$default, "$from: updated to $default");
	is($node->safe_psql($db, $describe), $fresh,
		"$from: every object is as a fresh install of $default has it");
	is($node->safe_psql($db,
			q{SELECT extconfig::regclass[]::text FROM pg_extension WHERE extname = 'safe_backfill'}),
		$config, "$from: the same tables are dumped with the extension");
	is($node->safe_psql($db,
			q{SELECT string_agg(column_name || ' ' || state, ', ' ORDER BY id) FROM safe_backfill_progress}),
		'a done, b failed', "$from: the runs recorded before the update are kept");

	$node->safe_psql($db, q{
		DROP TRIGGER stop ON t;
		SET client_min_messages = warning;
		CALL safe_backfill('t', 'b', 'resumed', 500);
	});
	is($node->safe_psql($db, q{SELECT count(*) FROM t WHERE b IS NULL OR a IS NULL}), '0',
		"$from: a run after the update fills what is left");
	is($node->safe_psql($db,
			q{SELECT count(*) FROM safe_backfill_jobs WHERE column_name = 'b'}),
		'1', "$from: and resumes the run interrupted before the update");
}

$node->stop;
done_testing();

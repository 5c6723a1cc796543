# ALTER EXTENSION safe_backfill UPDATE: from every older version shipped, the
# update scripts give exactly the objects a fresh install of the default
# version has (columns, constraints, indexes, view and procedure
# definitions, privileges, comments), the records of earlier runs survive,
# and a run after the update works and resumes what was interrupted before
# it.  Before the update, the new library refuses to run.
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
	});
	# The new library refuses to run on the old version's objects, before
	# touching anything.
	my ($ret, $out, $err) = $node->psql($db, q{CALL safe_backfill('t', 'a', 'x', 500)});
	like($err,
		qr/ERROR:  safe_backfill: the extension's SQL objects are version \Q$from\E, this library needs version \Q$default\E.*HINT:  Run ALTER EXTENSION safe_backfill UPDATE;/s,
		"$from: the new library asks for ALTER EXTENSION UPDATE first");
	is($node->safe_psql($db, q{SELECT count(a) FROM t}), '0', "$from: and changes nothing");

	# What the old library left: a run done, and a run that failed half-way
	# (the first 1500 keys filled), as it recorded them.
	$node->safe_psql($db, q{
		UPDATE t SET a = 'done before';
		UPDATE t SET b = 'resumed' WHERE id <= 1500;
		INSERT INTO safe_backfill_jobs (relid, attnum, table_name, column_name, value_text,
			iteration, phase, last_key, rows_estimated, rows_scanned, rows_done, batches,
			finished_at, state, error, pid)
		VALUES ('t'::regclass, 2, 'public.t', 'a', 'done before', 'key', 'done', '{3000}',
				3000, 3000, 3000, 6, now(), 'done', NULL, pg_backend_pid()),
			   ('t'::regclass, 3, 'public.t', 'b', 'resumed', 'key', 'main', '{1500}',
				3000, 1500, 1500, 3, now(), 'failed', 'stop', pg_backend_pid());
	});

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

	($ret, $out, $err) = $node->psql($db, q{CALL safe_backfill('t', 'b', 'resumed', 500)});
	like($err, qr/NOTICE:  safe_backfill: t\.b: resuming run \d+ in its main pass, after key \(1500\); 1500 rows were filled before/,
		"$from: the run interrupted before the update resumes where it stopped");
	is($node->safe_psql($db, q{SELECT count(*) FROM t WHERE b IS NULL OR a IS NULL}), '0',
		"$from: a run after the update fills what is left");
	is($node->safe_psql($db,
			q{SELECT count(*) || ' ' || min(state) || ' ' || min(rows_done) FROM safe_backfill_jobs WHERE column_name = 'b'}),
		'1 done 3000', "$from: as the same run, counting the rows filled before");

	# 1.2's detached runs work after the update (from 1.0 through 1.1)
	$node->safe_psql($db, q{ALTER TABLE t ADD COLUMN c text});
	my $run = $node->safe_psql($db, q{SELECT safe_backfill_start('t', 'c', 'detached', 500)});
	($ret, $out, $err) = $node->psql($db, "CALL safe_backfill_wait($run)");
	like($err, qr/run $run is done: 3000 rows filled/, "$from: a detached run after the update runs to its end");
	is($node->safe_psql($db, qq{SELECT state || ' ' || detached FROM safe_backfill_progress WHERE id = $run}),
		'done true', "$from: and the progress view shows it as detached");

	# 1.3's safe_update and safe_delete work after the update, recorded with their operation
	($ret, $out, $err) = $node->psql($db, q{CALL safe_update('t', 'c = upper(c)', $$c = 'detached'$$, 700)});
	like($err, qr/NOTICE:  safe_update: t: updated 3000 rows/, "$from: safe_update runs after the update");
	($ret, $out, $err) = $node->psql($db, q{CALL safe_delete('t', 'id > 2990', 700)});
	like($err, qr/NOTICE:  safe_delete: t: deleted 10 rows/, "$from: safe_delete runs after the update");
	is($node->safe_psql($db,
			q{SELECT string_agg(operation || ' ' || state, ', ' ORDER BY id) FROM safe_backfill_progress WHERE column_name IS NULL}),
		'update done, delete done', "$from: and both are recorded with their operation");
}

$node->stop;
done_testing();

# A throwaway Citus cluster for the TAP tests: a coordinator and two workers
# on 127.0.0.1, each with citus and safe_backfill created, the workers added.
# Skips the whole test file when Citus is not installed in the PostgreSQL
# being tested (citus.so in pg_config --pkglibdir) or cannot be created.
package CitusCluster;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Test::More;

sub citus_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus'
listen_addresses = '127.0.0.1'
max_prepared_transactions = 50
max_connections = 100
});
	$node->start;
	return $node;
}

# ($coordinator, @workers), or plan skip_all
sub start_or_skip
{
	my $pg_config = $ENV{PG_CONFIG} || 'pg_config';
	my $pkglibdir = `$pg_config --pkglibdir`;
	chomp $pkglibdir;
	plan skip_all => "Citus is not installed ($pkglibdir/citus.so not found)"
	  unless -e "$pkglibdir/citus.so";

	my $coord = citus_node('coordinator');
	my ($ret, $out, $err) = $coord->psql('postgres', 'CREATE EXTENSION citus');
	if ($ret != 0)
	{
		$coord->stop;
		plan skip_all => "CREATE EXTENSION citus failed: $err";
	}
	my @workers = (citus_node('worker1'), citus_node('worker2'));
	$_->safe_psql('postgres', 'CREATE EXTENSION citus') for @workers;
	$_->safe_psql('postgres', 'CREATE EXTENSION safe_backfill') for ($coord, @workers);
	$coord->safe_psql('postgres',
		"SELECT citus_set_coordinator_host('127.0.0.1', " . $coord->port . ")");
	$coord->safe_psql('postgres', "SELECT citus_add_node('127.0.0.1', " . $_->port . ")")
	  for @workers;
	return ($coord, @workers);
}

1;

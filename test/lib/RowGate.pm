# A gate for TAP tests: a session that locks rows of a table (SELECT ... FOR
# UPDATE) and keeps its transaction open until release_gate().  A backfill
# run with safe_backfill.batch_lock_timeout = 0 waits at the first locked row
# it reaches, so the test decides when it may go on instead of racing it.
package RowGate;
use strict;
use warnings;
use Exporter 'import';
use IPC::Run;

our @EXPORT = qw(lock_rows release_gate wait_at_gate);

sub lock_rows
{
	my ($node, $table, $where) = @_;
	my %gate = (in => '', out => '', err => '', node => $node);
	$gate{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$gate{in}, '>', \$gate{out}, '2>', \$gate{err});
	$gate{in} .= "BEGIN;\nSELECT 'pid=' || pg_backend_pid();\n"
	  . "SELECT 'locked ' || count(*) FROM (SELECT FROM $table WHERE $where FOR UPDATE) l;\n";
	$gate{h}->pump until $gate{out} =~ /^locked \d+$/m || !$gate{h}->pumpable;
	$gate{out} =~ /^locked [1-9]/m or die "the gate locked no row of $table ($where): $gate{err}";
	($gate{pid}) = $gate{out} =~ /pid=(\d+)/;
	return \%gate;
}

# Commit the gate's transaction: whoever waited for its rows goes on.
sub release_gate
{
	my ($gate) = @_;
	$gate->{in} .= "COMMIT;\n\\q\n";
	$gate->{h}->finish;
}

# Wait until $count sessions (default 1) are blocked by the gate's locks; for
# background workers, pass the pg_stat_activity condition that selects them.
sub wait_at_gate
{
	my ($gate, $count, $which) = @_;
	$count //= 1;
	$which //= q{query LIKE '%CALL safe_backfill(%'};
	$gate->{node}->poll_query_until('postgres',
		"SELECT count(*) = $count FROM pg_stat_activity WHERE $which AND $gate->{pid} = ANY (pg_blocking_pids(pid))")
	  or die "timed out waiting for $count session(s) to wait at the locked rows";
}

1;

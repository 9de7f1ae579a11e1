# JobEngineBounds: bounded polling for the TAP tests that assert that the
# engine keeps going within a time limit whatever other roles do
# (test/t/120-139).
#
# PostgreSQL::Test::Cluster's poll_query_until waits up to the harness
# timeout (minutes); these tests state their own, short bound.
package JobEngineBounds;

use strict;
use warnings;

use Time::HiRes qw(time usleep);

# within(NODE, DB, SECONDS, SQL): runs SQL (a query returning one boolean)
# every 100 ms until it returns true.  Returns the seconds that took, or
# undef when SECONDS passed first.
sub within
{
	my ($node, $db, $seconds, $sql) = @_;
	my $start = time;
	while (1)
	{
		my ($rc, $out) = $node->psql($db, $sql);
		return time - $start if $rc == 0 && $out eq 't';
		return undef if time - $start >= $seconds;
		usleep(100_000);
	}
}

# timed(CODE): runs CODE and returns (seconds it took, CODE's result).
sub timed
{
	my ($code) = @_;
	my $start = time;
	my $result = $code->();
	return (time - $start, $result);
}

1;

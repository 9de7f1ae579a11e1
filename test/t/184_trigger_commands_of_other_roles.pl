# A command that changes a trigger of job_engine._jobs makes the claim marks
# incomplete and the running counts untrusted at its commit (src/guard.c).
# DROP TRIGGER IF EXISTS of a trigger that _jobs does not have succeeds for
# any role that may use schema job_engine (PostgreSQL checks the ownership
# of a trigger only when it exists), and changes nothing: it must not cost
# every role's claims a walk of the queues and the supervisor a rebuild, at
# each commit of a role that may not change _jobs at all.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('trigger_commands_of_other_roles');

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE plain_role;
});

ok( $node->poll_query_until(
		'postgres', q{SELECT bool_and(trusted) AND job_engine_internal._dispatch_complete()
                        FROM job_engine_internal._running_counts()}),
	'the counts are trusted and the marks complete');

# Each statement commits on its own; the last reads the tables right after
# the DROP's commit, before a rebuild could restore them.
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
SET ROLE plain_role;
DROP TRIGGER IF EXISTS no_such_trigger ON job_engine._jobs;
RESET ROLE;
SELECT bool_and(trusted) AND job_engine_internal._dispatch_complete()
  FROM job_engine_internal._running_counts();
});
is($ret, 0, 'a role that does not own _jobs drops a trigger it does not have, skipping');
like($stderr, qr/does not exist, skipping/, '... told that it does not exist');
is($stdout, 't', '... and the counts stay trusted and the marks complete');

done_testing();

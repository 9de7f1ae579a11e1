# At release 1.0, which this library still serves, job_engine._jobs has no
# TRUNCATE trigger (jobs_running_truncated comes with 1.1).  A superuser's
# command that changes a trigger of _jobs there (pg_restore
# --disable-triggers, ENABLE TRIGGER ALL) is warned that the claim marks
# and running counts are not used; the hint must say what makes them used
# again, ALTER EXTENSION job_engine UPDATE, not to enable a trigger that
# does not exist.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('trigger_warning_at_1_0', max_workers => 1);

$node->safe_psql('postgres', q{CREATE EXTENSION job_engine VERSION '1.0'});

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	'ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard');
is($ret, 0, 'the guard is enabled ALWAYS at 1.0');
like($stderr, qr/WARNING:  job_engine's claim marks and running counts are not used/,
	'... with the warning: there is no TRUNCATE trigger');
like($stderr, qr/HINT:  .*ALTER EXTENSION job_engine UPDATE/,
	'... whose hint says to update the extension');
unlike($stderr, qr/HINT:  .*ENABLE ALWAYS TRIGGER jobs_running_truncated/,
	'... not to enable the trigger it lacks');

($ret, $stdout, $stderr) = $node->psql('postgres', 'ALTER EXTENSION job_engine UPDATE');
is($ret, 0, 'the update runs');
unlike($stderr, qr/WARNING/, '... without the warning');

done_testing();

# A table of claim marks that overflows keeps a listed queue found without
# candidates (its mark above every key), so that its next candidates are
# found from a mark.  Those queues must not keep the table from being
# complete again once no more than 128 queues have candidates
# (docs/architecture.md, "Claim low-water marks": "with 128 queues or
# fewer the table is complete again"), nor take the entries from the
# queues with candidates.
#
# mallory, a plain role, fills the table with 128 queues of one job each,
# in the transaction that also submits a job to queue later, which is
# paused so that its job stays a candidate (a job due in a day would be
# deferred, no candidate: docs/architecture.md, "Jobs not yet due"): the
# table overflows.  Her jobs run; then only later has a candidate, and
# the table must be complete again, listing it.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('claim_marks_empty_queues', max_workers => 2);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work');
sql(q{
CREATE ROLE mallory LOGIN;
SELECT job_engine.configure_queue('later');
SELECT job_engine.pause_queue('later');
});

ok(defined within(30, q{SELECT job_engine_internal._dispatch_complete()}),
	'start: the claim marks are complete');

# One transaction: the 128 queues are listed first, then later finds no room.
sql(q{
SET ROLE mallory;
SELECT count(job_engine.submit('work', '{}', queue => 'm_' || i)) FROM generate_series(1, 128) i;
RESET ROLE;
SELECT job_engine.submit('work', '{}', queue => 'later');
});
ok(defined within(60,
		q{SELECT count(*) = 128 FROM job_engine.jobs WHERE queue LIKE 'm\_%' AND state = 'succeeded'}),
	"mallory's jobs ran");

ok(defined within(30,
		q{SELECT job_engine_internal._dispatch_complete()
		     AND ARRAY(SELECT queue FROM job_engine_internal._dispatch_marks()) = '{later}'}),
	'the table is complete again, with the one queue that has a candidate')
  or diag('complete: ' . sql('SELECT job_engine_internal._dispatch_complete()')
	  . ', ' . sql('SELECT count(*) FROM job_engine_internal._dispatch_marks()') . ' queues listed, later '
	  . sql(q{SELECT count(*) FROM job_engine_internal._dispatch_marks() WHERE queue = 'later'}));

$node->stop;
done_testing();

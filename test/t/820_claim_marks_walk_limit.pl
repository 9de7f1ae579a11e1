# A rebuild of claim marks that overflow keeps "the queues with due
# candidates first" (docs/architecture.md, "Claim low-water marks";
# rebuild_row_cmp in src/dispatch.c).  But the walk of the queues it does
# not list stops after DISPATCH_WALK_MAX (1024) queues in name order, and
# only then are the queues sorted: with a candidate not yet due in each of
# 1300 queues whose names sort first, no later queue would ever be listed
# again.  A queue in use would then be claimed from without a mark,
# walking the index entries of every job claimed from it since the oldest
# snapshot, in every claim.
#
# A plain role once made such candidates by submitting jobs due in a year.
# A job not yet due is now deferred, not a candidate (docs/architecture.md,
# "Jobs not yet due"), which closes that; candidates not due still arise
# from rows written under session_replication_role = replica, which the
# guard leaves as they come, and the rebuild still has to prefer the
# queues with due candidates.  The test makes mallory's jobs due in a year
# candidates so.
#
# The queue in use, zz, has a concurrency of 1 and its first job waits on
# a lock the test holds, so it keeps due candidates that are not claimed;
# jobs submitted to a queue ping make executors claim (and rebuild).
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('claim_marks_walk_limit', max_workers => 2);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work');
sql(q{
CREATE FUNCTION wait_for_test(a jsonb) RETURNS jsonb LANGUAGE sql
  AS $$ SELECT pg_advisory_xact_lock(820); SELECT a $$;
SELECT job_engine.register_handler('wait_for_test', 'wait_for_test(jsonb)');
SELECT job_engine.configure_queue('zz', concurrency => 1);
CREATE ROLE mallory LOGIN;
});

ok(defined within(30, q{SELECT job_engine_internal._dispatch_complete()}),
	'start: the claim marks are complete');

sql(q{
SET ROLE mallory;
SELECT count(job_engine.submit('work', '{}', queue => 'a' || lpad(i::text, 5, '0'),
                               run_at => now() + interval '1 year'))
  FROM generate_series(1, 1300) i;
});
is(sql('SELECT job_engine_internal._dispatch_state()'), 'complete',
	'jobs due in a year, deferred, do not make the table overflow');
is(JobEngineNode::candidates_not_due($node, 'postgres', "queue LIKE 'a%'"),
	1300, 'candidates not due in 1300 queues');

# Holds the lock zz's next job waits on (returns the session holding it),
# and gives zz that job and 5 more behind it.
sub hold_zz
{
	my ($when) = @_;
	my $session = $node->background_psql('postgres');
	$session->query_safe('SELECT pg_advisory_lock(820)');
	sql(q{
SELECT job_engine.submit('wait_for_test', '{}', queue => 'zz');
SELECT count(job_engine.submit('work', '{}', queue => 'zz')) FROM generate_series(1, 5);
});
	ok(defined within(60,
			q{SELECT count(*) = 1 FROM job_engine.jobs WHERE queue = 'zz' AND state = 'running'}),
		"${when}zz's first job is running, its others wait behind it");
	return $session;
}

my $lock = hold_zz('');

# Each try submits a job to ping: an executor claims, and rebuilds the
# marks at most once a second.
ok(defined within(30,
		q{SELECT EXISTS (SELECT 1 FROM job_engine_internal._dispatch_marks() WHERE queue = 'zz')
		         OR job_engine.submit('work', '{}', queue => 'ping') IS NULL}),
	'a queue with due candidates is listed by a rebuild')
  or diag('state: ' . sql('SELECT job_engine_internal._dispatch_state()')
	  . ', ' . sql('SELECT count(*) FROM job_engine_internal._dispatch_marks()') . ' queues listed, '
	  . sql(q{SELECT count(*) FROM job_engine.jobs WHERE queue = 'ping' AND state = 'succeeded'})
	  . ' ping jobs ran');

$lock->query_safe('SELECT pg_advisory_unlock(820)');
$lock->quit;
ok(defined within(60,
		q{SELECT count(*) = 6 FROM job_engine.jobs WHERE queue = 'zz' AND state = 'succeeded'}),
	"zz's jobs ran");

# The same after a restart: the table starts invalid, and the rebuild's
# walk goes from every queue's start, without marks, stopping as above.
$node->restart;
$lock = hold_zz('after a restart, ');
ok(defined within(30,
		q{SELECT EXISTS (SELECT 1 FROM job_engine_internal._dispatch_marks() WHERE queue = 'zz')
		         OR job_engine.submit('work', '{}', queue => 'ping') IS NULL}),
	'a rebuild of an invalid table lists a queue with due candidates too')
  or diag('state: ' . sql('SELECT job_engine_internal._dispatch_state()'));
$lock->query_safe('SELECT pg_advisory_unlock(820)');
$lock->quit;
ok(defined within(60,
		q{SELECT count(*) = 12 FROM job_engine.jobs WHERE queue = 'zz' AND state = 'succeeded'}),
	"zz's jobs ran after the restart");

$node->stop;
done_testing();

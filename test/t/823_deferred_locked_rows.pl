# A plain role that holds the rows of its own due deferred jobs locked
# does not make every release pass over them (docs/architecture.md, "Jobs
# not yet due"; src/deferred.c).  mallory submits 3,000 jobs due in 6
# seconds and, in a transaction she keeps open, calls reschedule() on each:
# their rows stay locked, and deferred and due for every other
# transaction.  A release skips locked rows, but used to read each of them
# every time bob's delayed jobs came due (30 of them, one every 200 ms),
# and to look again every 100 ms as long as they were due.  Now a release
# looks only at the jobs due since the last one, and a sweep of all those
# due runs once every poll_interval (30 s here).  Counted as the index
# entries of jobs_deferred_idx read (pg_stat_user_indexes), not timed:
# 485,679 before, a few thousand now.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('deferred_locked_rows', max_workers => 2,
	extra_conf => "job_engine.poll_interval = '30s'\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work');
sql(q{
CREATE ROLE mallory LOGIN;
CREATE ROLE bob LOGIN;
});

# mallory's jobs, and her transaction holding their rows.
sql(q{SET ROLE mallory;
SELECT count(job_engine.submit('work', '{}', queue => 'mq', run_at => now() + interval '6 seconds'))
  FROM generate_series(1, 3000)});
my $hold = $node->background_psql('postgres');
$hold->query_safe('SET ROLE mallory');
$hold->query_safe('BEGIN');
is($hold->query_safe(q{SELECT count(job_engine.reschedule(id, now() + interval '1 hour'))
                         FROM job_engine.jobs WHERE queue = 'mq'}),
	'3000', 'mallory holds the rows of her 3,000 jobs');
# Waited for without reading _jobs: the entries read are counted below,
# and a session's counts reach the statistics only as it exits.
my $due_at = sql(q{SELECT max(run_at) FROM job_engine.jobs WHERE queue = 'mq'});
ok(defined within(30, qq{SELECT now() > '$due_at'}), 'they are due');

sub entries_read
{
	return sql(q{SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'jobs_deferred_idx'});
}

# Stats of the executors are in once all wait idle (they flush first, and
# at exit):
# an executor waits on an Extension wait event only then (named
# JobEngineExecutorIdle from PostgreSQL 17 on).
sub executors_idle
{
	return defined within(30, q{SELECT NOT EXISTS (
                                    SELECT FROM pg_stat_activity
                                     WHERE backend_type = 'job_engine executor'
                                       AND wait_event_type IS DISTINCT FROM 'Extension')});
}

ok(executors_idle(), 'the executors are idle');
# The release when mallory's jobs came due is done (each idle executor
# woke for it, and released or found them locked).
my $before = entries_read();
sql(q{SET ROLE bob;
SELECT count(job_engine.submit('work', jsonb_build_object('i', i),
                               run_at => clock_timestamp() + i * interval '200 ms'))
  FROM generate_series(1, 30) i});
ok(defined within(60, q{SELECT count(*) = 30 FROM job_engine.jobs
                         WHERE args ? 'i' AND state = 'succeeded'}),
	"bob's 30 delayed jobs run while mallory's rows stay locked");
ok(executors_idle(), 'the executors are idle again');
my $read = entries_read() - $before;
# A few passes over mallory's rows, not one for each of bob's 30 jobs: the
# release when they came due, by each executor that woke for it, again by
# the first release for bob when a commit deferred jobs meanwhile (it then
# could not move released_to), and a sweep every 30 s.  Up to five were
# seen under load; the bound is a third of one pass per job.
cmp_ok($read, '<', 10 * 3000,
	"releases read $read entries of jobs_deferred_idx for bob's 30 jobs, not 3,000 for each");

is(sql(q{SELECT count(*) FROM job_engine._jobs WHERE queue = 'mq' AND blocked = 't'}), '3000',
	'mallory\'s jobs are still deferred for everyone else');

$hold->query_safe('ROLLBACK');
$hold->quit;
ok(defined within(120, q{SELECT count(*) = 3000 FROM job_engine.jobs WHERE queue = 'mq' AND state = 'succeeded'}),
	'once mallory lets go, a sweep releases her jobs and they run');

done_testing();

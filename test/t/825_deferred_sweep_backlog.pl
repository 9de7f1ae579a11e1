# Another role's backlog of deferred jobs committed after their run_at
# does not hold back a delayed job (docs/architecture.md, "Jobs not yet
# due", "Sweeps").  A release looks only at jobs due after released_to,
# and makes candidates of at most 1,000 jobs, earliest first.  mallory
# commits 8,000 jobs after their run_at, due just before bob's delayed
# job, itself committed after its run_at (long transactions), and after a
# release went past both.  Such jobs were left to sweeps, 1,000 per
# poll_interval: bob's job waited for 8 of them, 26.7 s at
# poll_interval = 2 s.  Each commit now moves released_to back below its
# jobs' run_at, and releases go on claim by claim.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('deferred_sweep_backlog', max_workers => 2,
	extra_conf => "job_engine.poll_interval = '2s'\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work');
sql(q{
CREATE ROLE mallory LOGIN;
CREATE ROLE bob LOGIN;
});

# mallory's 8,000 jobs and bob's one, deferred (due in a second) in
# transactions kept open.
my $m = $node->background_psql('postgres');
$m->query_safe('SET ROLE mallory');
$m->query_safe('BEGIN');
$m->query_safe(q{SELECT count(job_engine.submit('work', '{}', queue => 'mq',
                                                run_at => clock_timestamp() + interval '1 second'))
                   FROM generate_series(1, 8000)});
my $b = $node->background_psql('postgres');
$b->query_safe('SET ROLE bob');
$b->query_safe('BEGIN');
my $bob = $b->query_safe(q{SELECT job_engine.submit('work', '{"bob": true}', priority => -1,
                                                    run_at => clock_timestamp() + interval '1 second')});

# A job due after both, committed: its release moves released_to past them.
sql(q{SET ROLE mallory;
SELECT job_engine.submit('work', '{"marker": true}', run_at => clock_timestamp() + interval '1500 ms')});
ok(defined within(30, q{SELECT state = 'succeeded' FROM job_engine.jobs WHERE args ? 'marker'}),
	'a release went past the run_at of the jobs not yet committed');

$m->query_safe('COMMIT');
$b->query_safe('COMMIT');
is(sql(qq{SELECT run_at < (SELECT run_at FROM job_engine.jobs WHERE args ? 'marker')
            FROM job_engine._jobs WHERE id = $bob}), 't', "the marker was due after bob's job");

# mallory's backlog goes claim by claim, not one batch per poll_interval.
my $waited = within(60, qq{SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $bob});
ok(defined $waited, "bob's job runs");
cmp_ok($waited // 60, '<', 9,
	"bob's job ran ${\ sprintf('%.1f', $waited // 60)} s after its commit, not after 8 sweeps of mallory's jobs");
ok(defined within(60, q{SELECT count(*) = 8000 FROM job_engine.jobs WHERE queue = 'mq' AND state = 'succeeded'}),
	"mallory's jobs run too");

$m->quit;
$b->quit;
done_testing();

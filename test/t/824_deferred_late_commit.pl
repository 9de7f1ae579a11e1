# A job whose submit commits after its run_at, and after a release has
# looked past that time, is released by the next claim, not left to the
# sweep (docs/architecture.md, "Jobs not yet due"; src/dispatch.c,
# apply_deferred).  A release looks only at jobs due after released_to;
# the commit of a deferred job due before released_to moves it back.
# poll_interval is an hour here, so that no sweep comes to the rescue
# during the test: without that, the job would wait for it.  Also
# run_now() of a job due but still deferred (a prepared submit's) releases
# it.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('deferred_late_commit', max_workers => 2,
	extra_conf => "job_engine.poll_interval = '1h'\nmax_prepared_transactions = 10\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work');

# A long transaction submits a job due in 1 s, and commits 3 s later.
my $long = $node->background_psql('postgres');
$long->query_safe('BEGIN');
my $late = $long->query_safe(
	q{SELECT job_engine.submit('work', '{"late": true}', run_at => clock_timestamp() + interval '1 second')});

# Meanwhile another job, due in 2 s, is released and runs: a release has
# looked at every job due by then.
my $other = sql(q{SELECT job_engine.submit('work', '{}', run_at => clock_timestamp() + interval '2 seconds')});
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $other"),
	'a job due in 2 s is released and runs');

$long->query_safe('COMMIT');
$long->quit;
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $late"),
	'the job committed after its run_at runs, with no sweep for an hour');

# A job submitted by a prepared transaction is noted by nothing (COMMIT
# PREPARED runs no callback of the backend that wrote it): due, it waits
# for a sweep.  run_now() releases it at once, though it is due already.
my $at = sql(q{SELECT clock_timestamp() + interval '500 ms'});
my $prep = $node->background_psql('postgres');
$prep->query_safe('BEGIN');
my $prepared = $prep->query_safe(
	qq{SELECT job_engine.submit('work', '{"prepared": true}', run_at => '$at')});
$prep->query_safe(q{PREPARE TRANSACTION 'late'});
ok(defined within(30, qq{SELECT now() > '$at'}), 'its run_at has passed');
$prep->query_safe(q{COMMIT PREPARED 'late'});
$prep->quit;
is(sql("SELECT blocked FROM job_engine._jobs WHERE id = $prepared"), 't',
	'the prepared job is due and still deferred');
is(sql("SELECT job_engine.run_now($prepared)"), 'f', 'run_now() says it was due already');
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $prepared"),
	'and releases it: it runs');

done_testing();

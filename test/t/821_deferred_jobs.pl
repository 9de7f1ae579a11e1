# Jobs not yet due are deferred: kept out of the claim until their run_at
# comes, then released by a claim or by an executor about to sleep
# (docs/architecture.md, "Jobs not yet due"; src/deferred.c).  Whatever
# writes a waiting job's run_at (submit, a retry's backoff, reschedule(), a
# superuser's UPDATE) decides it, and the job runs when due, not before:
#   1. a job submitted to run 2 s later is deferred, and runs once due;
#   2. executors that never go idle (a stream of jobs) still release it;
#   3. a retry's backoff defers the job between its attempts;
#   4. reschedule() to now makes a deferred job a candidate, to later
#      defers a waiting one; so does an UPDATE of run_at;
#   5. after a restart, a deferred job runs when due.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('deferred_jobs', max_workers => 2);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work');
sql(q{
CREATE FUNCTION slow(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT pg_sleep(0.05); SELECT a $$;
SELECT job_engine.register_handler('slow', 'slow(jsonb)', queue => 'stream');
CREATE FUNCTION fail_once(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT attempts FROM job_engine.jobs WHERE id = job_engine.current_job_id()) = 1 THEN
        RAISE EXCEPTION 'first attempt fails';
    END IF;
    RETURN a;
END $$;
SELECT job_engine.register_handler('fail_once', 'fail_once(jsonb)',
                                   backoff_base => '3 seconds', backoff_max => '3 seconds');
});

sub blocked_of { return sql("SELECT coalesce(blocked::text, 'none') FROM job_engine._jobs WHERE id = $_[0]"); }
sub state_of { return sql("SELECT state FROM job_engine.jobs WHERE id = $_[0]"); }

# 1. A job due in 2 seconds.
my $later = sql(q{SELECT job_engine.submit('work', '{}', run_at => clock_timestamp() + interval '2 seconds')});
is(blocked_of($later), 't', '1: a job due in 2 seconds is deferred');
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $later"),
	'1: it runs once due');
is(sql("SELECT started_at >= run_at FROM job_engine.jobs WHERE id = $later"), 't',
	'1: not before its run_at');

# 2. Both executors busy with a stream of 600 jobs of 50 ms (about 15 s of
# work), and a job due 1 s from now, ahead of them by priority.
sql(q{SELECT count(job_engine.submit('slow', '{}')) FROM generate_series(1, 600)});
ok(defined within(30, q{SELECT count(*) = 2 FROM job_engine.jobs WHERE handler = 'slow' AND state = 'running'}),
	'2: both executors run the stream');
my $urgent = sql(q{SELECT job_engine.submit('work', '{}', queue => 'stream', priority => -1,
                                            run_at => clock_timestamp() + interval '1 second')});
ok(defined within(60, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $urgent"),
	'2: the deferred job runs');
ok(defined within(60, q{SELECT count(*) = 600 FROM job_engine.jobs WHERE handler = 'slow' AND state = 'succeeded'}),
	'2: the stream ends');
my $after = sql(qq{SELECT count(*) FROM job_engine.jobs
                    WHERE handler = 'slow' AND started_at > (SELECT started_at FROM job_engine.jobs WHERE id = $urgent)});
cmp_ok($after, '>=', 100,
	"2: it was released while the executors were busy: $after jobs of the stream started after it");

# 3. A retry's backoff.
my $retried = sql(q{SELECT job_engine.submit('fail_once', '{}')});
ok(defined within(30, "SELECT state = 'retrying' FROM job_engine.jobs WHERE id = $retried"),
	'3: the first attempt fails, the job is retrying');
is(blocked_of($retried), 't', '3: deferred for its backoff');
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $retried"),
	'3: its second attempt runs and succeeds');
is(sql("SELECT a2.started_at >= a1.finished_at + interval '2.9 seconds'
          FROM job_engine.attempts a1 JOIN job_engine.attempts a2 USING (job_id)
         WHERE job_id = $retried AND a1.attempt = 1 AND a2.attempt = 2"), 't',
	'3: not before the backoff ended');

# 4. reschedule() and UPDATE of run_at.
my $resched = sql(q{SELECT job_engine.submit('work', '{}', run_at => now() + interval '1 hour')});
is(blocked_of($resched), 't', '4: a job due in an hour is deferred');
sql("SELECT job_engine.reschedule($resched, now())");
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $resched"),
	'4: rescheduled to now, it runs');
sql(q{SELECT job_engine.configure_queue('parked'); SELECT job_engine.pause_queue('parked')});
my $parked = sql(q{SELECT job_engine.submit('work', '{}', queue => 'parked')});
is(blocked_of($parked), 'none', '4: a job due now is a candidate');
sql("SELECT job_engine.reschedule($parked, now() + interval '1 hour')");
is(blocked_of($parked), 't', '4: rescheduled to later, it is deferred');
my $updated = sql(q{SELECT job_engine.submit('work', '{}', run_at => now() + interval '1 hour')});
sql("UPDATE job_engine._jobs SET run_at = now() WHERE id = $updated");
is(blocked_of($updated), 'none', '4: an UPDATE of run_at to now makes it a candidate');
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $updated"),
	'4: and it runs');

# 5. A restart: nothing in shared memory says when the job is due.
my $across = sql(q{SELECT job_engine.submit('work', '{}', run_at => clock_timestamp() + interval '3 seconds')});
$node->restart;
ok(defined within(60, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $across"),
	'5: after a restart, a deferred job runs when due');
is(state_of($parked), 'created', 'the job of the paused queue still waits');

done_testing();

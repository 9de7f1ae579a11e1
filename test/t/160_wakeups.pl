# Whatever makes waiting work runnable wakes an executor (issue 13 item 2).
#
# With job_engine.poll_interval = 60s an executor that found nothing to
# claim sleeps for a minute unless something wakes it, so each scenario
# below must see its job start within a few seconds: only a wake-up can do
# that.  Before each scenario every executor is woken once (resume_queue of
# an empty queue wakes them all), so that its next poll is a minute away.
#
# The members of the kind, each a scenario:
#   a. abort() of a delayed job heading an ordering key
#   b. abort() of a retrying job heading an ordering key
#   c. abort() of a running job heading an ordering key, whose handler
#      ignores the cancel (its executor stays busy)
#   d. success of a prerequisite with three dependants: all three start
#   e. a job leaving `running` in a full queue (abort of a running job whose
#      handler ignores the cancel)
#   f. resume_queue()
#   g. configure_queue() raising the concurrency limit
#   h. permanent failure of a job heading an ordering key
#   i. crash recovery ending a job heading an ordering key
#   j. run_now() of a delayed job
#   k. reschedule() of a delayed job to now
#   l. retry() of a failed job
# Not members: pause_queue() and unregister_handler() (refused while the
# handler has unfinished jobs) unblock nothing; submit(), resubmit(),
# publish() and compensation create work and wake as they always did.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node(
	'wakeups',
	max_workers => 3,
	extra_conf => "job_engine.poll_interval = '60s'\n"
	  # The executor of an aborted attempt that ignores the cancel stays
	  # busy for the whole file.
	  . "job_engine.abort_grace = '120s'\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION job_engine;
CREATE TABLE knobs (release boolean NOT NULL);
INSERT INTO knobs VALUES (false);
-- Sleeps a['sleep'] seconds, or fails with a['fail'] (a SQLSTATE).
CREATE FUNCTION rec(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF a ? 'fail' THEN
        RAISE EXCEPTION 'failing on purpose' USING ERRCODE = a ->> 'fail';
    END IF;
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::float8, 0));
    RETURN a;
END
$$;
-- Ignores cancels until knobs.release (or 60 s).
CREATE FUNCTION stubborn(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    LOOP
        BEGIN
            PERFORM pg_sleep(0.05);
        EXCEPTION WHEN query_canceled THEN
            NULL;
        END;
        EXIT WHEN (SELECT release FROM knobs) OR clock_timestamp() > t0 + interval '60 seconds';
    END LOOP;
    RETURN a;
END
$$;
SELECT job_engine.register_handler('rec', 'rec(jsonb)', queue => 'q',
                                   backoff_base => '1 hour', backoff_max => '2 hours');
SELECT job_engine.register_handler('rec1', 'rec(jsonb)', queue => 'q', max_attempts => 1);
SELECT job_engine.register_handler('stubborn', 'stubborn(jsonb)', queue => 'q', max_attempts => 1);
-- Not left at its defaults, so that purge keeps it while it is empty.
SELECT job_engine.configure_queue('wake', concurrency => 1000);
});

$node->poll_query_until('postgres',
	"SELECT count(*) = 3 FROM job_engine.workers WHERE state = 'idle'")
  or die 'the executors did not start';

# Wakes every executor once, so that none polls during the next seconds.
sub fresh_sleep
{
	sql("SELECT job_engine.resume_queue('wake')");
	usleep(500_000);
}

# Whether job $id started: its claim, committed before the handler runs,
# sets started_at.
sub has_started
{
	my ($id) = @_;
	return sql("SELECT started_at IS NOT NULL FROM job_engine.jobs WHERE id = $id") eq 't';
}

# Seconds until job $id started (or undef after $limit seconds).
sub started_within
{
	my ($id, $limit) = @_;
	my $t0 = time;
	while (time - $t0 < $limit)
	{
		return time - $t0 if has_started($id);
		usleep(50_000);
	}
	return undef;
}

sub not_started { return !has_started($_[0]); }

sub busy_on
{
	my ($id) = @_;
	return $node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = $id)");
}

sub release_stubborn
{
	sql("UPDATE knobs SET release = true");
	$node->poll_query_until('postgres',
		"SELECT NOT EXISTS (SELECT 1 FROM job_engine.workers WHERE state = 'busy')")
	  or die 'the stubborn handlers did not end';
	sql("UPDATE knobs SET release = false");
}

my $bound = 5;

# The check of a scenario: job $waiting has not started after every
# executor went back to sleep; $action (SQL) then starts it at once.
sub wakes
{
	my ($label, $waiting, $action) = @_;
	fresh_sleep();
	ok(not_started($waiting), "$label: the job waits");
	sql($action);
	my $t = started_within($waiting, $bound);
	ok(defined $t, "$label: ... and starts at once" . (defined $t ? sprintf(' (%.1f s)', $t) : ''));
}

# a. abort() of a delayed key head
{
	my $a = sql("SELECT job_engine.submit('rec', ordering_key => 'ka', run_at => now() + interval '1 hour')");
	my $b = sql("SELECT job_engine.submit('rec', ordering_key => 'ka')");
	wakes('a: abort() of a delayed key head', $b, "SELECT job_engine.abort($a, 'not needed')");
}

# b. abort() of a retrying key head
{
	my $a = sql("SELECT job_engine.submit('rec', '{\"fail\": \"40001\"}', ordering_key => 'kb')");
	my $b = sql("SELECT job_engine.submit('rec', ordering_key => 'kb')");
	$node->poll_query_until('postgres', "SELECT state = 'retrying' FROM job_engine.jobs WHERE id = $a")
	  or die 'b: the key head did not fail once';
	wakes('b: abort() of a retrying key head', $b, "SELECT job_engine.abort($a, 'give up')");
}

# c. abort() of a running key head that ignores the cancel
{
	my $a = sql("SELECT job_engine.submit('stubborn', ordering_key => 'kc')");
	busy_on($a) or die 'c: the key head did not start';
	my $b = sql("SELECT job_engine.submit('rec', ordering_key => 'kc')");
	wakes('c: abort() of a running key head, on another executor', $b, "SELECT job_engine.abort($a, 'stop')");
	release_stubborn();
}

# d. success of a prerequisite with three dependants
{
	fresh_sleep();
	my $p = sql("SELECT job_engine.submit('rec', '{\"sleep\": 1}')");
	my @d = map { sql("SELECT job_engine.submit('rec', '{\"sleep\": 4}', depends_on => ARRAY[$p])") } 1 .. 3;
	$node->poll_query_until('postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $p")
	  or die 'd: the prerequisite did not succeed';
	my $all = 1;
	for my $id (@d)
	{
		$all = 0 unless defined started_within($id, 3);
	}
	ok($all, 'd: all three dependants start at once on three executors');
	$node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM job_engine.jobs WHERE id IN (" . join(',', @d) . ") AND state = 'succeeded'");
}

# e. a job leaving `running` in a full queue
{
	sql("SELECT job_engine.configure_queue('full', concurrency => 1)");
	my $a = sql("SELECT job_engine.submit('stubborn', queue => 'full')");
	busy_on($a) or die 'e: the first job did not start';
	my $b = sql("SELECT job_engine.submit('rec', queue => 'full')");
	wakes('e: a job leaving running in a full queue', $b, "SELECT job_engine.abort($a, 'make room')");
	release_stubborn();
}

# f. resume_queue()
{
	sql("SELECT job_engine.configure_queue('paused')");
	sql("SELECT job_engine.pause_queue('paused')");
	my $a = sql("SELECT job_engine.submit('rec', queue => 'paused')");
	wakes('f: resume_queue()', $a, "SELECT job_engine.resume_queue('paused')");
}

# g. configure_queue() raising the concurrency limit
{
	sql("SELECT job_engine.configure_queue('narrow', concurrency => 1)");
	my $a = sql("SELECT job_engine.submit('stubborn', queue => 'narrow')");
	busy_on($a) or die 'g: the first job did not start';
	my $b = sql("SELECT job_engine.submit('rec', queue => 'narrow')");
	wakes('g: configure_queue() raising the limit', $b,
		"SELECT job_engine.configure_queue('narrow', concurrency => 2)");
	release_stubborn();
}

# h. permanent failure of a key head
{
	fresh_sleep();
	my $a = sql("SELECT job_engine.submit('rec1', '{\"fail\": \"22023\"}', ordering_key => 'kh')");
	my $b = sql("SELECT job_engine.submit('rec', ordering_key => 'kh')");
	ok(defined started_within($b, $bound), 'h: the permanent failure of the key head starts the next job at once');
}

# i. crash recovery ending a key head
{
	my $a = sql("SELECT job_engine.submit('stubborn', ordering_key => 'ki')");
	busy_on($a) or die 'i: the key head did not start';
	my $b = sql("SELECT job_engine.submit('rec', ordering_key => 'ki')");
	wakes('i: recovery ending the key head (crashed, no attempts left)', $b,
		"SELECT pg_terminate_backend(pid) FROM job_engine.workers WHERE job_id = $a");
	is(sql("SELECT state FROM job_engine.jobs WHERE id = $a"), 'failed', 'i: the key head ended failed');
}

# j. run_now() of a delayed job
{
	my $a = sql("SELECT job_engine.submit('rec', run_at => now() + interval '1 hour')");
	wakes('j: run_now() of a delayed job', $a, "SELECT job_engine.run_now($a)");
}

# k. reschedule() of a delayed job to now
{
	my $a = sql("SELECT job_engine.submit('rec', run_at => now() + interval '1 hour')");
	wakes('k: reschedule() of a delayed job to now', $a, "SELECT job_engine.reschedule($a, now())");
}

# l. retry() of a failed job: it started before, so its second attempt is
# what is waited for.
{
	my $a = sql("SELECT job_engine.submit('rec1', '{\"fail\": \"22023\"}')");
	$node->poll_query_until('postgres', "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $a")
	  or die 'l: the job did not fail';
	fresh_sleep();
	sql("SELECT job_engine.retry($a)");
	my $second = JobEngineBounds::within($node, 'postgres', $bound,
		"SELECT EXISTS (SELECT 1 FROM job_engine.attempts WHERE job_id = $a AND attempt = 2)");
	ok(defined $second, 'l: retry() of a failed job starts its next attempt at once');
}

done_testing();

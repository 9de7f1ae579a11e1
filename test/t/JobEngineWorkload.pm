# JobEngineWorkload: a database with jobs in every state, owned by two login
# roles, for the tests that carry job_engine's data to another cluster
# (test/t/600_dump_restore.pl, test/t/610_pg_upgrade.pl).
#
#   my $w = JobEngineWorkload::create($node);  # roles, database 'app', jobs
#   my %before = JobEngineWorkload::snapshot($node);
#   ... dump and restore, or pg_upgrade, into $new ...
#   JobEngineWorkload::check_arrived($new, \%before, $w, 'dump');
#   JobEngineWorkload::check_resumes($new, $w, 'dump');
#
# The database 'app' is owned by the login role 'dbo'; 'alice' and 'bob' own
# its handlers, jobs, events and subscriptions.  The node must serve 'app'
# (job_engine.databases) and give it at least one executor.  States, with the
# queue that keeps each where it is:
#
#   succeeded   alice's 'ok', and bob's event job run for alice's event
#   failed      bob's 'bad' (one attempt)
#   aborted     alice's delayed job, aborted
#   created     alice's and bob's 'later' in the paused queue 'qp', one of
#               them behind a dependency; bob's event job there too
#   retrying    bob's 'flaky', whose first attempt failed after its queue
#               'qr' was paused
#   running     alice's 'slow', held by the knob 'slow' while the data is
#               carried (its attempt dies with the old cluster)
#
# Every handler records session_user and current_user of its attempts in
# public.effects, so that check_resumes() sees whom the jobs ran as.
package JobEngineWorkload;

use strict;
use warnings;

use Test::More;

my $terminal = "('succeeded', 'failed', 'aborted')";

# The snapshot of the data carried: every column a restore or an upgrade
# must keep, owners by name.  The running job is left out (it is recovered
# as soon as the new cluster serves the database); check_resumes() follows it.
my %snapshot_sql = (
	jobs => q{SELECT id, handler, queue, state, priority, attempts, max_attempts, args, result,
                     run_at, created_at, started_at, finished_at,
                     pg_catalog.pg_get_userbyid(owner), correlation_id, parent_job_id,
                     event_id, depends_on, abort_reason, last_error
                FROM job_engine._jobs WHERE handler <> 'slow' ORDER BY id},
	attempts => q{SELECT a.job_id, a.attempt, a.outcome, a.started_at, a.finished_at,
                         a.sqlstate, a.message
                    FROM job_engine._attempts a JOIN job_engine._jobs j ON j.id = a.job_id
                   WHERE j.handler <> 'slow' ORDER BY 1, 2},
	events => q{SELECT id, event_type, payload, correlation_id,
                       pg_catalog.pg_get_userbyid(publisher), published_at
                  FROM job_engine._events ORDER BY id},
	subscriptions => q{SELECT id, event_type, handler, pg_catalog.pg_get_userbyid(owner)
                         FROM job_engine.subscriptions ORDER BY id},
	handlers => q{SELECT name, fn, queue, max_attempts, backoff_base, timeout, retry_on,
                         pg_catalog.pg_get_userbyid(owner)
                    FROM job_engine.handlers ORDER BY name},
	queues => q{SELECT name, paused, concurrency, group_commit FROM job_engine.queues ORDER BY name},
	dependencies => q{SELECT job_id, depends_on FROM job_engine._dependencies ORDER BY 1, 2},
	# What each role sees through the views.
	alice_sees => q{SET ROLE alice;
SELECT string_agg(id || ' ' || owner, ', ' ORDER BY id) FROM job_engine.jobs
UNION ALL SELECT string_agg(id::text, ', ' ORDER BY id) FROM job_engine.events},
	bob_sees => q{SET ROLE bob;
SELECT string_agg(id || ' ' || owner, ', ' ORDER BY id) FROM job_engine.jobs
UNION ALL SELECT string_agg(id::text, ', ' ORDER BY id) FROM job_engine.events});

sub sql
{
	my ($node, $query, $role) = @_;
	$query = "SET ROLE $role;\n$query" if $role;
	return $node->safe_psql('app', $query);
}

sub poll
{
	my ($node, $query, $name) = @_;
	ok($node->poll_query_until('app', $query), $name)
	  or diag(sql($node, 'SELECT id, handler, state, attempts, last_error FROM job_engine._jobs ORDER BY id'));
}

# create(NODE): the roles, the database and its jobs; returns the ids
# { ok, event_job, bad, aborted, later_a, later_after, later_b, flaky, slow }.
sub create
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE dbo LOGIN;
CREATE DATABASE app OWNER dbo;
});
	sql($node, q{
CREATE EXTENSION job_engine;
CREATE TABLE public.knobs (name text PRIMARY KEY, hold boolean NOT NULL);
INSERT INTO public.knobs VALUES ('slow', true), ('flaky', true);
CREATE TABLE public.effects (job_id bigint, attempt integer, as_session name, as_current name);
GRANT SELECT ON public.knobs TO PUBLIC;
GRANT SELECT, INSERT ON public.effects TO PUBLIC;
-- Waits, polling, while the knob it names holds (bounded by the handler's timeout).
CREATE FUNCTION public.wait_knob(knob text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WHILE (SELECT k.hold FROM public.knobs k WHERE k.name = knob) LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
CREATE FUNCTION public.record(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects
    VALUES (job_engine.current_job_id(), (job_engine.context() ->> 'attempt')::int,
            session_user, current_user);
    RETURN a;
END $$;
CREATE FUNCTION public.slow(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.wait_knob('slow');
    RETURN public.record(a);
END $$;
CREATE FUNCTION public.bad(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bad %', a ->> 'n' USING ERRCODE = '22023';
END $$;
-- Its first attempt waits for the knob 'flaky', then fails.
CREATE FUNCTION public.flaky(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (job_engine.context() ->> 'attempt')::int = 1 THEN
        PERFORM public.wait_knob('flaky');
        RAISE EXCEPTION 'first attempt' USING ERRCODE = '40001';
    END IF;
    RETURN public.record(a);
END $$;
GRANT EXECUTE ON FUNCTION job_engine.register_handler(text, regprocedure, text, integer,
    interval, interval, interval, text[], text) TO alice, bob;
GRANT EXECUTE ON FUNCTION job_engine.subscribe(text, text) TO bob;
});
	sql($node, q{
SELECT job_engine.register_handler('ok', 'public.record(jsonb)');
SELECT job_engine.register_handler('later', 'public.record(jsonb)', queue => 'qp');
SELECT job_engine.register_handler('slow', 'public.slow(jsonb)', queue => 'qs', timeout => '5 min');
}, 'alice');
	sql($node, q{
SELECT job_engine.register_handler('bad', 'public.bad(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('flaky', 'public.flaky(jsonb)', queue => 'qr',
       backoff_base => '10 ms', backoff_max => '10 ms', retry_on => ARRAY['40001'],
       timeout => '5 min');
SELECT job_engine.subscribe('order.*', 'later');
}, 'bob');
	sql($node, q{
SELECT job_engine.pause_queue('qp');
SELECT job_engine.configure_queue('qs', concurrency => 1);
});

	my %id;
	$id{ok} = sql($node, q{SELECT job_engine.submit('ok', '{"n": 1}')}, 'alice');
	$id{later_a} = sql($node, q{SELECT job_engine.submit('later', '{"n": 2}')}, 'alice');
	$id{later_after} = sql($node,
		qq{SELECT job_engine.submit('later', '{"n": 3}', depends_on => ARRAY[$id{later_a}]::bigint[])}, 'alice');
	$id{aborted} = sql($node, q{
SELECT job_engine.submit('ok', '{"n": 4}', run_at => now() + interval '1 day') AS id \gset
SELECT job_engine.abort(:id, 'not needed');
SELECT :id}, 'alice');
	$id{bad} = sql($node, q{SELECT job_engine.submit('bad', '{"n": 5}')}, 'bob');
	$id{later_b} = sql($node, q{SELECT job_engine.submit('later', '{"n": 6}')}, 'bob');
	my $event = sql($node, q{SELECT job_engine.publish('order.paid', '{"order": 7}')}, 'alice');
	$id{event_job} = sql($node, "SELECT id FROM job_engine._jobs WHERE event_id = $event");

	# Retrying: the first attempt runs until its queue is paused, then fails.
	$id{flaky} = sql($node, q{SELECT job_engine.submit('flaky', '{"n": 8}')}, 'bob');
	poll($node, "SELECT state = 'running' FROM job_engine._jobs WHERE id = $id{flaky}",
		'workload: the first attempt of the flaky job runs');
	sql($node, q{SELECT job_engine.pause_queue('qr')});
	sql($node, q{UPDATE public.knobs SET hold = false WHERE name = 'flaky'});
	poll($node, "SELECT state = 'retrying' FROM job_engine._jobs WHERE id = $id{flaky}",
		'workload: it failed and waits in its paused queue to be retried');

	$id{slow} = sql($node, q{SELECT job_engine.submit('slow', '{"n": 9}')}, 'alice');
	poll($node, "SELECT state = 'running' FROM job_engine._jobs WHERE id = $id{slow}",
		'workload: the slow job is running');
	poll($node, "SELECT count(*) = 2 FROM job_engine._jobs WHERE id IN ($id{ok}, $id{bad}) AND state IN $terminal",
		'workload: the due jobs finished');

	is( sql($node, 'SELECT string_agg(state::text, \',\' ORDER BY state) FROM (SELECT DISTINCT state FROM job_engine._jobs) s'),
		'created,running,retrying,succeeded,failed,aborted', 'workload: jobs in every state');
	return \%id;
}

# snapshot(NODE): the data to carry, query by query.
sub snapshot
{
	my ($node) = @_;
	return map { $_ => sql($node, $snapshot_sql{$_}) } keys %snapshot_sql;
}

# check_arrived(NODE, BEFORE, IDS, WHAT): every job, attempt, event,
# subscription, handler and queue arrived, with its owner's name, and each
# role sees its own jobs; so does the job that was running.
sub check_arrived
{
	my ($node, $before, $id, $what) = @_;
	my %after = snapshot($node);
	for my $k (sort keys %snapshot_sql)
	{
		is($after{$k}, $before->{$k}, "$what: $k arrived as they were");
	}
	like($before->{alice_sees}, qr/^\d+ alice(, \d+ alice)+\n\d+$/, "$what: alice saw her jobs and event");
	is(sql($node, "SELECT owner FROM job_engine.jobs WHERE id = $id->{slow}", 'alice'),
		'alice', "$what: the job that was running is alice's");
}

# check_resumes(NODE, IDS, WHAT): the waiting jobs run, and the one that was
# running runs again, each as its owner.
sub check_resumes
{
	my ($node, $id, $what) = @_;
	sql($node, q{
SELECT job_engine.resume_queue('qp');
SELECT job_engine.resume_queue('qr');
UPDATE public.knobs SET hold = false WHERE name = 'slow';
});
	my @waiting = @$id{qw(later_a later_after later_b event_job flaky slow)};
	my $list = join(', ', @waiting);
	poll($node, "SELECT count(*) = " . scalar(@waiting)
		  . " FROM job_engine._jobs WHERE id IN ($list) AND state = 'succeeded'",
		"$what: the waiting jobs and the one that was running succeed");
	is( sql($node, qq{
SELECT string_agg(j.id || ' ' || pg_catalog.pg_get_userbyid(j.owner) || ' ran as '
                  || e.as_session || '/' || e.as_current, ', ' ORDER BY j.id)
  FROM job_engine._jobs j JOIN public.effects e ON e.job_id = j.id AND e.attempt = j.attempts
 WHERE j.id IN ($list)}),
		join(', ', map { "$_->[0] $_->[1] ran as $_->[1]/$_->[1]" }
			  sort { $a->[0] <=> $b->[0] }
			  map { [ $id->{$_}, /_b$|event_job|flaky/ ? 'bob' : 'alice' ] }
			  qw(later_a later_after later_b event_job flaky slow)),
		"$what: each ran as its owner");
	is( sql($node, "SELECT string_agg(attempt || ' ' || outcome, ', ' ORDER BY attempt)
                      FROM job_engine._attempts WHERE job_id = $id->{slow}"),
		'1 crashed, 2 succeeded', "$what: the attempt that was running is recorded crashed");
}

1;

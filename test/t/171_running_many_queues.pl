# The running counts (src/running.c) hold 128 queues per database.  With
# running jobs in more queues, the table cannot follow them: claims count
# the rows, and the limits still hold; back under 128, the counts are
# trusted again and follow the moves.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('many_queues', max_workers => 2);
$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION quick(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT job_engine.register_handler('quick', 'quick(jsonb)'::regprocedure);
SELECT job_engine.configure_queue(format('q%s', n), concurrency => 1)
  FROM generate_series(1, 140) n;
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $trusted = q{SELECT bool_and(trusted) FROM job_engine_internal._running_counts()};
ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted');

# A session submits a job to each of 140 queues and claims them in the
# same transaction, out of the executors' sight, then keeps them running
# (it is their worker: crash recovery leaves them while it lives).
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{SELECT job_engine.submit('quick', queue => format('q%s', n))
                        FROM generate_series(1, 140) n});
$holder->query_safe(q{DO $$ BEGIN FOR i IN 1 .. 140 LOOP
                          PERFORM job_engine_internal._claim(pg_backend_pid());
                        END LOOP; END $$});
$holder->query_safe(q{COMMIT});
my $held = sql(q{SELECT count(DISTINCT queue) FROM job_engine._jobs WHERE state = 'running'});
is($held, 140, 'jobs run in 140 queues');
is(sql($trusted), 'f', 'the counts are not trusted');

# Full queues take nothing more; an unlimited queue's job runs meanwhile.
sql(q{SELECT job_engine.submit('quick', queue => queue) FROM (SELECT DISTINCT queue FROM job_engine._jobs
                                                              WHERE state = 'running') r});
my $free = sql(q{SELECT job_engine.submit('quick', queue => 'free', priority => 10)});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $free"),
	'a job of an unlimited queue runs');
is(sql(q{SELECT count(*) FROM job_engine._jobs j WHERE state = 'running'}), $held,
	'no full queue took a job');

# Back under 128: 20 of the held jobs end.  The counts are trusted again,
# the 20 queues with room run their waiting jobs, the others none.
sql(q{SELECT job_engine.abort(id, 'room') FROM (SELECT id FROM job_engine._jobs
                                                WHERE state = 'running' ORDER BY id LIMIT 20) j});
ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted again');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 20 FROM job_engine._jobs
                       WHERE state = 'succeeded' AND queue IN
                             (SELECT queue FROM job_engine._jobs WHERE state = 'aborted')}),
	'the queues with room run their waiting jobs');
is(sql(q{SELECT count(*) FROM job_engine._jobs WHERE state = 'running'}), $held - 20,
	'the others still take nothing');
is( sql(q{SELECT count(*) FROM job_engine_internal._running_counts() c
           JOIN (SELECT queue, count(*) AS n FROM job_engine._jobs WHERE state = 'running'
                  GROUP BY queue) r USING (queue) WHERE c.running = r.n}),
	$held - 20,
	'the counts are those of the rows');
$holder->quit;

# Queues come and go: jobs run one after the other in 150 queues never
# seen before, each ending before the next is submitted.  An entry whose
# count is back at 0 makes room for a new queue, so the counts stay
# trusted throughout (they used to be given up at the 129th name, until
# the next rebuild).
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 0 FROM job_engine._jobs
                       WHERE state NOT IN ('succeeded', 'failed', 'aborted')}),
	'every held job ends');
ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted');
sql(q{CREATE TABLE lapses (n int)});
sql(q{DO $$
DECLARE
    job bigint;
BEGIN
    FOR n IN 1 .. 150 LOOP
        job := job_engine.submit('quick', queue => format('cycle%s', n));
        COMMIT;
        FOR i IN 1 .. 6000 LOOP
            EXIT WHEN (SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = job);
            PERFORM pg_sleep(0.01);
        END LOOP;
        IF NOT (SELECT bool_and(trusted) FROM job_engine_internal._running_counts()) THEN
            INSERT INTO lapses VALUES (n);
        END IF;
        COMMIT;
    END LOOP;
END $$});
is(sql(q{SELECT count(*) FROM job_engine.jobs WHERE queue LIKE 'cycle%' AND state = 'succeeded'}),
	150, 'the jobs of the 150 queues ran');
is(sql(q{SELECT string_agg(n::text, ',') FROM lapses}), '',
	'the counts were trusted after every job');
cmp_ok(sql(q{SELECT count(*) FROM job_engine_internal._running_counts()}), '<=', 128,
	'the table holds at most 128 queues');

done_testing();

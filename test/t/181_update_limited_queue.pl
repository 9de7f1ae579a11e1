# ALTER EXTENSION job_engine UPDATE from 1.0 while jobs of a queue with a
# concurrency limit run: 1.0's guard is not enabled ALWAYS, so the running
# counts (src/running.c) and the claim marks (src/dispatch.c) are not used
# before the update; the update enables it ALWAYS, and then they are.  The
# limit holds throughout, every job ends, and the counts are the rows'.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('update_limited', max_workers => 4);
$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine VERSION '1.0';
CREATE TABLE seen (job_id bigint, running bigint);
CREATE FUNCTION note(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seen
    SELECT job_engine.current_job_id(), count(*) FROM job_engine._jobs
     WHERE queue = 'lq' AND state = 'running';
    PERFORM pg_sleep(0.05);
    RETURN '{}';
END
$$;
SELECT job_engine.register_handler('note', 'note(jsonb)'::regprocedure, queue => 'lq');
SELECT job_engine.configure_queue('lq', concurrency => 2, group_commit => 2);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{SELECT job_engine.submit_many('note', array_fill('{}'::jsonb, ARRAY[200]))});
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) >= 20 FROM job_engine._jobs WHERE state = 'succeeded'}),
	'jobs run at 1.0');
sql(q{ALTER EXTENSION job_engine UPDATE});
isnt(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'job_engine'}), '1.0', 'updated');
cmp_ok(sql(q{SELECT count(*) FROM job_engine._jobs WHERE state <> 'succeeded'}), '>', 0,
	'jobs were left to run after the update');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 200 FROM job_engine._jobs WHERE state = 'succeeded'}),
	'every job ends');
cmp_ok(sql(q{SELECT max(running) FROM seen}), '<=', 2, 'never more than 2 running');
ok( $node->poll_query_until(
		'postgres', q{SELECT bool_and(trusted) AND COALESCE(sum(running), 0) = 0
                        FROM job_engine_internal._running_counts()}),
	'the counts are trusted and 0');
ok( $node->poll_query_until('postgres', q{SELECT job_engine_internal._dispatch_complete()}),
	'the marks are complete');

done_testing();

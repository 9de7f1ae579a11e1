# Claims of a queue with a concurrency limit compare the limit with the
# queue's running jobs kept in shared memory (src/running.c), not with a
# count of the rows: that count read every running version an old snapshot
# keeps, so each claim of the queue paid for every job claimed since (a
# held xid brought a limited queue down to half its load).
#
#  a. The counts are trusted once the supervisor has counted the rows, and
#     follow every claim and end: the limit holds, and a drained queue
#     counts 0.
#  b. While an xid is held, claims of the limited queue read no index
#     entry of jobs_running_idx per claim.
#  c. A TRUNCATE makes them untrusted; the supervisor counts again.
#  d. A job running while the counts are rebuilt is counted.
#  e. A job running in a queue whose name is too long to hold (any role
#     may submit to a new queue) leaves the counts trusted: only that
#     queue's claims count its rows, and its limit holds.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('running_counts', max_workers => 3);

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE seen (job_id bigint, running bigint);
-- Each attempt notes how many jobs of its queue its snapshot sees running.
CREATE FUNCTION note(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    INSERT INTO seen
    SELECT job_engine.current_job_id(), count(*) FROM job_engine._jobs
     WHERE queue = 'lq' AND state = 'running';
    SELECT '{}'::jsonb
$$;
CREATE FUNCTION sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((a ->> 's')::float8);
    RETURN '{}';
END
$$;
SELECT job_engine.register_handler('note', 'note(jsonb)'::regprocedure, queue => 'lq');
SELECT job_engine.register_handler('sleeper', 'sleeper(jsonb)'::regprocedure, queue => 'lq',
                                   timeout => '5 min');
SELECT job_engine.configure_queue('lq', concurrency => 2);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub wait_trusted
{
	return $node->poll_query_until('postgres',
		q{SELECT bool_and(trusted) FROM job_engine_internal._running_counts()});
}

sub lq_count
{
	return sql(q{SELECT COALESCE(max(running) FILTER (WHERE queue = 'lq'), 0)
                   FROM job_engine_internal._running_counts()});
}

# -- a ----------------------------------------------------------------------
ok(wait_trusted(), 'a. the counts are trusted once the supervisor has counted');
my $first = sql(q{SELECT min(id) FROM job_engine.submit_many('note',
                   array_fill('{}'::jsonb, ARRAY[60])) s(id)});
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) = 60 FROM job_engine.jobs WHERE id >= $first AND state = 'succeeded'}),
	'a. the jobs ran');
cmp_ok(sql(q{SELECT max(running) FROM seen}), '<=', 2, 'a. never more than 2 running');
is(lq_count(), '0', 'a. the drained queue counts 0 running');

# -- b ----------------------------------------------------------------------
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT pg_current_xact_id()');

sub running_idx_reads
{
	return sql(q{SELECT idx_tup_read FROM pg_stat_user_indexes
                  WHERE indexrelname = 'jobs_running_idx'});
}
my $reads0 = running_idx_reads();
$first = sql(q{SELECT min(id) FROM job_engine.submit_many('note',
              array_fill('{}'::jsonb, ARRAY[150])) s(id)});
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) = 150 FROM job_engine.jobs WHERE id >= $first AND state = 'succeeded'}),
	'b. the jobs ran while an xid was held');
# The executors report their statistics when they go idle.
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 0 FROM job_engine.workers WHERE state <> 'idle'}),
	'b. the executors are idle');
my $reads = running_idx_reads() - $reads0;
# Counting rows, claim k read the ~k running versions of the jobs before
# it (over 10,000 entries for 150 jobs); crash recovery's look for orphans
# every 5 s reads them once per look.
cmp_ok($reads, '<', 2000, "b. claims read no running versions ($reads index entries read in all)");
cmp_ok(sql(q{SELECT max(running) FROM seen}), '<=', 2, 'b. never more than 2 running');
$holder->query_safe('COMMIT');
$holder->quit;

# -- c ----------------------------------------------------------------------
sql(q{TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs});
is(sql(q{SELECT bool_and(trusted) FROM job_engine_internal._running_counts()}), 'f',
	'c. a TRUNCATE makes the counts untrusted');
ok(wait_trusted(), 'c. the supervisor counts again');

# -- d ----------------------------------------------------------------------
my $long = sql(q{SELECT job_engine.submit('sleeper', '{"s": 600}')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM job_engine.jobs WHERE id = $long"),
	'd. a long job runs');
is(lq_count(), '1', 'd. it is counted');
# TRUNCATE of another table does not matter; a COPY-loaded running row
# does: untrusted, counted again with the long job in it.
sql(q{COPY job_engine._jobs (handler, queue, state, args, max_attempts, run_at, owner,
                             correlation_id, attempts, worker_pid)
      FROM PROGRAM 'echo "sleeper	lq	running	{}	1	2026-01-01	postgres	00000000-0000-0000-0000-000000000001	1	1"'});
ok(wait_trusted(), 'd. counted again after a running row was loaded');
cmp_ok(lq_count(), '>=', 1, 'd. the long job is still counted');
sql(qq{SELECT job_engine.abort($long, 'done')});
ok( $node->poll_query_until(
		'postgres', q{SELECT COALESCE(max(running) FILTER (WHERE queue = 'lq'), 0) = 0
                       FROM job_engine_internal._running_counts()}),
	'd. every end is counted: the queue comes back to 0');

# -- e ----------------------------------------------------------------------
ok(wait_trusted(), 'e. the counts are trusted');
my $lname = 'l' x 70;
sql(qq{SELECT job_engine.configure_queue('$lname', concurrency => 1)});
my $in_long = sql(qq{SELECT job_engine.submit('sleeper', '{"s": 600}', queue => '$lname')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM job_engine.jobs WHERE id = $in_long"),
	'e. a job runs in a queue with a 70-byte name');
my $behind = sql(qq{SELECT job_engine.submit('note', queue => '$lname')});
# A job of 'lq' submitted after the one behind it: once it has run, a
# claim has passed over the long queue, which is full.
my $after = sql(q{SELECT job_engine.submit('note')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $after"),
	'e. a job of another limited queue runs meanwhile');
is(sql(q{SELECT bool_and(trusted) FROM job_engine_internal._running_counts()}), 't',
	'e. the counts stay trusted');
is(sql("SELECT state FROM job_engine.jobs WHERE id = $behind"), 'created',
	'e. the long queue\'s limit holds: the job behind waits');
sql(qq{SELECT job_engine.abort($in_long, 'done')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $behind"),
	'e. then it runs');

done_testing();

# Writes to job_engine._jobs under session_replication_role = replica (a
# superuser, a subscriber applying changes), and a TRUNCATE while executors
# run: the lifecycle guard does not check them but notes them, so the
# running counts (src/running.c) follow, or are counted again.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('replica_writes', max_workers => 3);
$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION quick(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((a ->> 's')::float8);
    RETURN '{}';
END
$$;
SELECT job_engine.register_handler('quick', 'quick(jsonb)'::regprocedure, queue => 'lq');
SELECT job_engine.register_handler('sleeper', 'sleeper(jsonb)'::regprocedure, queue => 'lq',
                                   timeout => '5 min');
SELECT job_engine.configure_queue('lq', concurrency => 1);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $trusted = q{SELECT bool_and(trusted) FROM job_engine_internal._running_counts()};

sub runs
{
	my ($what) = @_;
	my $id = sql(q{SELECT job_engine.submit('quick')});
	ok( $node->poll_query_until(
			'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
		$what);
}

sub running_sleeper
{
	my $id = sql(q{SELECT job_engine.submit('sleeper', '{"s": 600}')});
	ok( $node->poll_query_until(
			'postgres', "SELECT state = 'running' FROM job_engine.jobs WHERE id = $id"),
		"a sleeper runs ($id)");
	return $id;
}

ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted');

# A running job ended by a replica write: the end is noted.
my $long = running_sleeper();
sql(qq{SET session_replication_role = replica;
       UPDATE job_engine._jobs SET state = 'succeeded', finished_at = now() WHERE id = $long});
is(sql(q{SELECT running FROM job_engine_internal._running_counts() WHERE queue = 'lq'}), '0',
	'a replica write that ends a running job is counted');
runs('the queue has room after it');
sql(qq{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE backend_type = 'job_engine executor' AND state = 'active'});

# A running row inserted by a replica write: counted again, with it in.
ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted');
sql(q{SET session_replication_role = replica;
      INSERT INTO job_engine._jobs (handler, queue, state, args, max_attempts, run_at, owner,
                                    correlation_id, attempts, worker_pid)
      VALUES ('sleeper', 'lq', 'running', '{}', 1, now(), 'postgres',
              '00000000-0000-0000-0000-000000000002', 1, pg_backend_pid())});
ok($node->poll_query_until('postgres', $trusted), 'counted again after a running row came in');

# A TRUNCATE while a job runs.
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 0 FROM job_engine._jobs WHERE state = 'running'}),
	'crash recovery ends the inserted row');
running_sleeper();
sql(q{TRUNCATE job_engine._jobs CASCADE});
ok($node->poll_query_until('postgres', $trusted), 'counted again after the TRUNCATE');
runs('the queue has room after the TRUNCATE');

done_testing();

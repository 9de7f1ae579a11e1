# The shared tables beside job_engine._jobs (the claim marks, src/dispatch.c,
# and the running counts, src/running.c) follow the rows through the
# lifecycle guard and the TRUNCATE trigger.  A superuser who disables one of
# them makes an operator error: rows are written that nobody notes.  What
# must hold all the same: no job is stranded, and the limits recover once
# the triggers are enabled ALWAYS again.
#
#  a. A job submitted to a new queue while the guard is disabled runs once
#     it is enabled again (the marks said the queue had no candidate).
#  b. The end of a running job while every trigger is disabled does not
#     leave its queue full: a job submitted afterwards runs.
#  c. While the guard is disabled, the limit holds.
#  d. A TRUNCATE while only the TRUNCATE trigger is disabled does not leave
#     a truncated running job counted.
#  e. ENABLE TRIGGER ALL (what pg_restore --disable-triggers ends with)
#     enables the triggers for the origin only: the superuser is warned,
#     with the commands that enable them ALWAYS; those commands are not
#     warned about, and the marks and counts are used again.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('guard_disabled', max_workers => 3);

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE seen (job_id bigint, running bigint);
CREATE FUNCTION quick(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
-- Notes how many jobs of its queue its snapshot sees running, then sleeps.
CREATE FUNCTION sleeper(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seen
    SELECT job_engine.current_job_id(), count(*) FROM job_engine._jobs
     WHERE queue = 'lq' AND state = 'running';
    PERFORM pg_sleep((a ->> 's')::float8);
    RETURN '{}';
END
$$;
-- Sleeps without reading job_engine._jobs: its attempt holds no lock that
-- a TRUNCATE waits for.
CREATE FUNCTION napper(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_sleep((a ->> 's')::float8);
    SELECT '{}'::jsonb
$$;
SELECT job_engine.register_handler('quick', 'quick(jsonb)'::regprocedure, queue => 'lq');
SELECT job_engine.register_handler('napper', 'napper(jsonb)'::regprocedure, queue => 'lq',
                                   timeout => '5 min');
SELECT job_engine.register_handler('sleeper', 'sleeper(jsonb)'::regprocedure, queue => 'lq',
                                   timeout => '5 min');
SELECT job_engine.configure_queue('lq', concurrency => 1);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub wait_kept
{
	my ($what) = @_;
	ok( $node->poll_query_until(
			'postgres', q{SELECT bool_and(trusted) AND job_engine_internal._dispatch_complete()
                            FROM job_engine_internal._running_counts()}),
		"$what: the counts are trusted and the marks complete");
}

sub succeeds
{
	my ($id, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
		$what);
}

sub running_sleeper
{
	my ($s, $handler) = @_;
	$handler //= 'sleeper';
	my $id = sql(qq{SELECT job_engine.submit('$handler', '{"s": $s}')});
	ok( $node->poll_query_until(
			'postgres', "SELECT state = 'running' FROM job_engine.jobs WHERE id = $id"),
		"a sleeper runs ($id)");
	return $id;
}

sub enable_always
{
	sql(q{ALTER TABLE job_engine._jobs ENABLE TRIGGER ALL;
          ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard;
          ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated});
}

# -- a ----------------------------------------------------------------------
wait_kept('a');
sql(q{ALTER TABLE job_engine._jobs DISABLE TRIGGER jobs_lifecycle_guard});
my $stray = sql(q{SELECT job_engine.submit('quick', queue => 'fresh')});
enable_always();
succeeds($stray, 'a. a job submitted to a new queue while the guard was disabled runs');

# -- b ----------------------------------------------------------------------
wait_kept('b');
my $long = running_sleeper(600);
sql(q{ALTER TABLE job_engine._jobs DISABLE TRIGGER ALL});
sql(qq{SELECT job_engine.abort($long, 'ended unseen')});
enable_always();
succeeds(sql(q{SELECT job_engine.submit('quick')}),
	'b. a job of the limited queue runs after a running job ended unseen');

# -- c ----------------------------------------------------------------------
wait_kept('c');
sql(q{TRUNCATE seen});
sql(q{ALTER TABLE job_engine._jobs DISABLE TRIGGER jobs_lifecycle_guard});
my $first = sql(q{SELECT min(id) FROM job_engine.submit_many('sleeper',
                   array_fill('{"s": 0.2}'::jsonb, ARRAY[6])) s(id)});
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) = 6 FROM job_engine.jobs WHERE id >= $first AND state = 'succeeded'}),
	'c. the jobs ran while the guard was disabled');
is(sql(q{SELECT max(running) FROM seen}), '1', 'c. never more than 1 running');
enable_always();

# -- d ----------------------------------------------------------------------
wait_kept('d');
running_sleeper(600, 'napper');
sql(q{ALTER TABLE job_engine._jobs DISABLE TRIGGER jobs_running_truncated});
sql(q{TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs});
enable_always();
succeeds(sql(q{SELECT job_engine.submit('quick')}),
	'd. a job of the limited queue runs after a TRUNCATE the counts did not see');

# -- e ----------------------------------------------------------------------
wait_kept('e');
my ($rc, $out, $err) = $node->psql('postgres', q{ALTER TABLE job_engine._jobs DISABLE TRIGGER ALL;
                                                 ALTER TABLE job_engine._jobs ENABLE TRIGGER ALL});
is($rc, 0, 'e. ENABLE TRIGGER ALL succeeds');
like($err, qr/WARNING:  job_engine's claim marks and running counts are not used while a trigger of job_engine\._jobs is not enabled ALWAYS/,
	'e. the superuser is warned that the triggers are not enabled ALWAYS');
like($err, qr/HINT:  Run ALTER TABLE job_engine\._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard and ALTER TABLE job_engine\._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated\./,
	'e. the hint gives the commands');
($rc, $out, $err) = $node->psql('postgres', q{ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard;
                                             ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated});
is($rc, 0, 'e. the hinted commands succeed');
my $warnings = () = $err =~ /WARNING:/g;
is($warnings, 1, 'e. only the first, after which one trigger is still origin-only, warns');
($rc, $out, $err) = $node->psql('postgres', q{ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated});
is($err, '', 'e. no warning once both are enabled ALWAYS');
wait_kept('e, after the hinted commands');
succeeds(sql(q{SELECT job_engine.submit('quick', queue => 'after_e')}),
	'e. a job runs afterwards');

done_testing();

# The supervisor's vacuum of job_engine._jobs and _attempts (src/vacuum.c)
# never waits for a lock a user's transaction holds, and so never joins it
# in a deadlock.  After each vacuum it notes the size of every index of the
# two tables; it used to take those locks unconditionally, in one
# transaction: with _attempts locked by a user (a TRUNCATE of the job
# tables, say, which locks _attempts first), it held _jobs and waited for
# _attempts, and the user's lock on _jobs then failed with "deadlock
# detected".
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'maintenance_waits',
	max_workers => 2,
	extra_conf => "job_engine.vacuum_after = 50\n");

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT job_engine.register_handler('noop', 'noop(jsonb)'::regprocedure);
});

sub vacuums
{
	return $node->safe_psql('postgres', q{
SELECT vacuum_count FROM pg_stat_user_tables
 WHERE schemaname = 'job_engine' AND relname = '_jobs'});
}

# Another session keeps the vacuum off for now (a vacuum takes SHARE
# UPDATE EXCLUSIVE; the supervisor skips a table it cannot have at once),
# while the jobs run: enough claims for a vacuum to be due.
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE job_engine._jobs IN SHARE UPDATE EXCLUSIVE MODE');
$node->safe_psql('postgres', q{
SELECT count(*) FROM job_engine.submit_many('noop', array_fill('{}'::jsonb, ARRAY[200]))});
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 200 FROM job_engine.jobs WHERE state = 'succeeded'}),
	'the jobs ran');

# A user holds _attempts, as a TRUNCATE of the job tables does first; then
# the vacuum may run.  It vacuums _jobs (_attempts is skipped: it is
# locked) and then notes the indexes' sizes.
my $user = $node->background_psql('postgres', on_error_stop => 0);
$user->query_safe('BEGIN');
$user->query_safe('LOCK TABLE job_engine._attempts IN ACCESS EXCLUSIVE MODE');
my $before = vacuums();
$holder->query_safe('COMMIT');
$holder->quit;
ok( $node->poll_query_until(
		'postgres', qq{
SELECT vacuum_count > $before FROM pg_stat_user_tables
 WHERE schemaname = 'job_engine' AND relname = '_jobs'}),
	'the supervisor vacuumed _jobs while a user held _attempts');

# The user now locks _jobs too.  The supervisor must hold nothing of it:
# before the fix this waited, then failed with a deadlock.
my $ret = $user->query(q{
SET lock_timeout = '20s';
LOCK TABLE job_engine._jobs IN ACCESS EXCLUSIVE MODE;
SELECT 'locked'});
is($ret, 'locked', "the user's lock on _jobs is granted");
unlike($user->{stderr} // '', qr/deadlock detected/, 'no deadlock');
$user->query_safe('COMMIT');
$user->quit;

unlike(slurp_file($node->logfile), qr/deadlock detected/, 'no deadlock in the server log');

# The engine goes on.
my $id = $node->safe_psql('postgres', q{SELECT job_engine.submit('noop')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
	'a job submitted afterwards runs');

done_testing();

# A row that an ordinary role's open transaction holds is never taken as
# decided in the direction that stalls others (issue 12 §3):
#
#  1. alice leaves open an abort() of her job A, then submits J depending on
#     A at the front of the queue.  J stays held back (A is unfinished), bob's
#     jobs of the same queue run meanwhile, and once alice commits J is
#     aborted with A.
#  2. J is a blocked candidate at the head of its queue (one prerequisite
#     ended, the other not) whose own row alice holds: it cannot be held
#     back, and the claims take the jobs behind it instead of leaving the
#     queue.
#  3. 300 jobs noted in _recheck whose rows alice holds do not keep a later
#     noted job of bob's from being decided.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node('busy_blockers', max_workers => 2);

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION job_engine;
CREATE ROLE alice;
CREATE ROLE bob;
CREATE FUNCTION nap(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::float8, 0));
    RETURN a;
END
$$;
SELECT job_engine.register_handler('nap', 'nap(jsonb)');
});

# Polls $query (one boolean) for at most $seconds; returns the elapsed time
# or undef.
sub within
{
	my ($query, $seconds) = @_;
	my $t = JobEngineBounds::within($node, 'postgres', $seconds, $query);
	diag "not within $seconds s: $query" unless defined $t;
	return $t;
}

sub as_role
{
	my ($role, $query) = @_;
	return sql("SET ROLE $role; $query");
}

sub bob_drains
{
	my ($label) = @_;
	my $first = as_role('bob',
		"SELECT min(id) FROM job_engine.submit_many('nap', array_fill('{}'::jsonb, ARRAY[5])) AS s(id)");
	my $t = within("SELECT count(*) = 5 FROM job_engine.jobs WHERE id >= $first AND owner = 'bob' "
		  . "AND state = 'succeeded'", 15);
	ok(defined $t, "$label: bob's jobs of the same queue run meanwhile"
		  . (defined $t ? sprintf(' (%.1f s)', $t) : ''));
}

sub alice_holds
{
	my (@ids) = @_;
	my $alice = $node->background_psql('postgres');
	$alice->query_safe('SET ROLE alice');
	$alice->query_safe('BEGIN');
	$alice->query_safe('SELECT job_engine.abort(id, \'hold\') FROM unnest(ARRAY['
		  . join(',', @ids) . ']) AS id');
	return $alice;
}

# ---------------------------------------------------------------------------
# 1. a prerequisite whose row alice holds still holds the job back
# ---------------------------------------------------------------------------
{
	my $a = as_role('alice', "SELECT job_engine.submit('nap', run_at => now() + '1 day')");
	my $alice = alice_holds($a);
	my $j = as_role('alice', "SELECT job_engine.submit('nap', depends_on => ARRAY[$a], priority => -100)");

	# The submit noted J for a recheck: decided now, while A's row is busy.
	sql('SELECT job_engine_internal._release_rechecks(64)');
	is(sql("SELECT blocked FROM job_engine._jobs WHERE id = $j"), 'd',
		'1: J stays held back by its busy prerequisite');
	bob_drains('1');
	is(sql("SELECT state FROM job_engine.jobs WHERE id = $j"), 'created', '1: J has not run');

	$alice->query_safe('COMMIT');
	$alice->quit;
	ok(defined within("SELECT state = 'aborted' FROM job_engine.jobs WHERE id = $j", 15),
		'1: once alice committed, J is aborted with its prerequisite');
}

# ---------------------------------------------------------------------------
# 2. a blocked head whose own row alice holds
# ---------------------------------------------------------------------------
{
	sql("SELECT job_engine.pause_queue('default')");
	sql("SELECT job_engine.configure_queue('other'); SELECT job_engine.pause_queue('other')");
	my $first = as_role('alice', "SELECT job_engine.submit('nap', queue => 'other')");
	my $later = as_role('alice', "SELECT job_engine.submit('nap', queue => 'other', run_at => now() + '1 day')");
	my $j = as_role('alice',
		"SELECT job_engine.submit('nap', depends_on => ARRAY[$first, $later], priority => -100)");
	sql('SELECT job_engine_internal._release_rechecks(64)');
	is(sql("SELECT blocked FROM job_engine._jobs WHERE id = $j"), 'd', '2: J is held back');
	# $first ends and releases J, which waits for $later still.
	sql("SELECT job_engine.resume_queue('other')");
	ok(defined within("SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $first", 15)
		  && defined within("SELECT blocked IS NULL FROM job_engine._jobs WHERE id = $j", 15),
		'2: J is a candidate although blocked');
	my $alice = alice_holds($j);
	sql("SELECT job_engine.resume_queue('default')");
	bob_drains('2');
	$alice->query_safe('ROLLBACK');
	$alice->quit;
	is(sql("SELECT state FROM job_engine.jobs WHERE id = $j"), 'created', '2: J has not run');
	sql("SELECT job_engine.abort($later, 'done')");
	ok(defined within("SELECT state = 'aborted' FROM job_engine.jobs WHERE id = $j", 15),
		'2: J is aborted with its prerequisite');
}

# ---------------------------------------------------------------------------
# 3. busy rechecks do not starve the others
# ---------------------------------------------------------------------------
{
	my $ids = as_role('alice',
		"SELECT string_agg(id::text, ',') FROM job_engine.submit_many('nap', array_fill('{}'::jsonb, ARRAY[300]),"
		  . " run_at => now() + '1 day') AS s(id)");
	my @ids = split /,/, $ids;
	my $alice = alice_holds(@ids);
	# As a transition that found their rows busy leaves them.
	sql("INSERT INTO job_engine._recheck (job_id) SELECT unnest(ARRAY[$ids]::bigint[])");

	my $p = as_role('bob', "SELECT job_engine.submit('nap', run_at => now() + '1 day')");
	my $k = as_role('bob', "SELECT job_engine.submit('nap', depends_on => ARRAY[$p])");
	my $decided = 0;
	for (1 .. 20)
	{
		sql('SELECT job_engine_internal._release_rechecks(64)');
		$decided = sql("SELECT NOT EXISTS (SELECT 1 FROM job_engine._recheck WHERE job_id = $k)") eq 't';
		last if $decided;
	}
	ok($decided, "3: bob's noted job is decided while alice's 300 stay busy");
	is(sql("SELECT count(DISTINCT job_id) FROM job_engine._recheck WHERE job_id IN ($ids)"), '300',
		"3: alice's busy jobs stay noted");
	$alice->query_safe('ROLLBACK');
	$alice->quit;
	ok(defined within("SELECT NOT EXISTS (SELECT 1 FROM job_engine._recheck)", 30),
		'3: once alice rolled back, every noted job is decided');
	sql("SELECT job_engine.abort(id, 'done') FROM job_engine.jobs WHERE state = 'created'");
}

done_testing();

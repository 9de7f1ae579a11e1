# No open transaction of an ordinary role stalls the engine's bookkeeping
# beyond a short, bounded wait (issue 12 §3), and no outcome is lost to it.
#
#  1. The issue's example: alice leaves open a transaction that submitted a
#     job depending on her two running jobs.  Their outcomes are recorded at
#     once, bob's jobs run, and a superuser's abort() returns.
#  2. alice leaves open a transaction that aborts her two running jobs
#     (one per executor).  When their handlers end, the executors give up
#     on recording the outcome after a bounded wait and go on with bob's
#     jobs.  If alice commits, the jobs stay aborted; if she rolls back, the
#     attempt is recorded later as failed (55P03) and the retry policy runs
#     it again.
#  3. alice leaves open a transaction aborting a running job whose executor
#     then dies: the supervisor still recovers the other attempts and starts
#     a new executor; the job itself is recovered once she rolls back.
# The isolation spec bounded_waits covers the same locks statement by
# statement; this file checks the processes end to end.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node('bounded_waits', max_workers => 2);

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
SELECT job_engine.register_handler('nap', 'nap(jsonb)', backoff_base => '100 ms', backoff_max => '1 s');
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
	ok(defined $t, "$label: bob's jobs run meanwhile" . (defined $t ? sprintf(' (%.1f s)', $t) : ''));
}

sub running
{
	my (@ids) = @_;
	my $list = join(',', @ids);
	return $node->poll_query_until('postgres',
		"SELECT count(*) = " . scalar(@ids) . " FROM job_engine.jobs WHERE id IN ($list) AND state = 'running'");
}

# ---------------------------------------------------------------------------
# 1. an open dependant of running jobs
# ---------------------------------------------------------------------------
{
	my $j1 = as_role('alice', "SELECT job_engine.submit('nap', '{\"sleep\": 1}')");
	my $j2 = as_role('alice', "SELECT job_engine.submit('nap', '{\"sleep\": 1}')");
	running($j1, $j2) or die '1: the jobs did not start';

	my $alice = $node->background_psql('postgres');
	$alice->query_safe('SET ROLE alice');
	$alice->query_safe('BEGIN');
	my $n = $alice->query_safe("SELECT job_engine.submit('nap', depends_on => ARRAY[$j1, $j2])");
	$n =~ s/\s+//g;

	my $t = within("SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($j1, $j2) AND state = 'succeeded'", 10);
	ok(defined $t, '1: the outcomes of the jobs she depends on are recorded at once'
		  . (defined $t ? sprintf(' (%.1f s)', $t) : ''));
	bob_drains('1');

	my $j3 = as_role('alice', "SELECT job_engine.submit('nap', '{\"sleep\": 30}')");
	running($j3) or die '1: the third job did not start';
	my $alice2 = $node->background_psql('postgres');
	$alice2->query_safe('SET ROLE alice');
	$alice2->query_safe('BEGIN');
	$alice2->query_safe("SELECT job_engine.submit('nap', depends_on => ARRAY[$j3])");
	my $t0 = time;
	my ($rc, $out) = $node->psql('postgres',
		"SET statement_timeout = '20s'; SELECT job_engine.abort($j3, 'superuser stops it')");
	ok($rc == 0 && $out eq 't' && time - $t0 < 5,
		"1: a superuser's abort() of a job alice depends on returns at once");
	$alice2->query_safe('ROLLBACK');
	$alice2->quit;

	$alice->query_safe('COMMIT');
	$alice->quit;
	ok(defined within("SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $n", 15),
		'1: once committed, her dependant runs');
}

# ---------------------------------------------------------------------------
# 2. open aborts of running jobs, committed or rolled back
# ---------------------------------------------------------------------------
for my $end ('COMMIT', 'ROLLBACK')
{
	my @j = map { as_role('alice', "SELECT job_engine.submit('nap', '{\"sleep\": 2}')") } 1 .. 2;
	running(@j) or die "2 ($end): the jobs did not start";

	my $alice = $node->background_psql('postgres');
	$alice->query_safe('SET ROLE alice');
	$alice->query_safe('BEGIN');
	$alice->query_safe("SELECT job_engine.abort($_, 'alice changes her mind')") for @j;

	# The handlers end after 2 s; both executors then want the rows alice holds.
	bob_drains("2 ($end)");
	is(sql("SELECT string_agg(state::text, ',') FROM job_engine.jobs WHERE id IN ($j[0], $j[1])"),
		'running,running', "2 ($end): alice's jobs are still running for everyone else");

	$alice->query_safe($end);
	$alice->quit;
	my $list = "$j[0], $j[1]";
	if ($end eq 'COMMIT')
	{
		ok( defined within(
				"SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state = 'aborted'", 10),
			'2 (COMMIT): the jobs stay aborted');
		usleep(6_000_000);    # a recovery pass (every 5 s) finds nothing to record
		is( sql(
				"SELECT string_agg(state || '/' || attempts, ',' ORDER BY id) FROM job_engine.jobs WHERE id IN ($list)"),
			'aborted/1,aborted/1', '2 (COMMIT): nothing else is recorded for them');
		is( sql("SELECT string_agg(outcome::text, ',' ORDER BY job_id) FROM job_engine.attempts WHERE job_id IN ($list)"),
			'aborted,aborted', '2 (COMMIT): their attempts are recorded aborted');
	}
	else
	{
		ok( defined within(
				"SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state = 'succeeded'", 30),
			'2 (ROLLBACK): the jobs run again and succeed');
		is( sql(
				"SELECT string_agg(outcome || ':' || COALESCE(sqlstate, ''), ',' ORDER BY job_id, attempt) FROM job_engine.attempts WHERE job_id IN ($list)"
			),
			'failed:55P03,succeeded:,failed:55P03,succeeded:',
			'2 (ROLLBACK): the first attempts are recorded failed, could not record (55P03): no outcome is lost');
	}
}

# ---------------------------------------------------------------------------
# 3. an open abort of a job whose executor dies
# ---------------------------------------------------------------------------
{
	my $j = as_role('alice', "SELECT job_engine.submit('nap', '{\"sleep\": 60}')");
	running($j) or die '3: the job did not start';
	my $pid = sql("SELECT pid FROM job_engine.workers WHERE job_id = $j");

	my $alice = $node->background_psql('postgres');
	$alice->query_safe('SET ROLE alice');
	$alice->query_safe('BEGIN');
	$alice->query_safe("SELECT job_engine.abort($j, 'alice changes her mind')");

	sql("SELECT pg_terminate_backend($pid)");
	my $t = within("SELECT count(*) = 2 FROM job_engine.workers WHERE pid <> $pid", 10);
	ok(defined $t, '3: the supervisor recovers and starts a new executor meanwhile'
		  . (defined $t ? sprintf(' (%.1f s)', $t) : ''));
	bob_drains('3');

	$alice->query_safe('ROLLBACK');
	$alice->quit;
	ok(defined within("SELECT outcome = 'crashed' FROM job_engine.attempts WHERE job_id = $j AND attempt = 1", 20),
		'3: once alice rolled back, the attempt is recovered as crashed');
	sql("SELECT job_engine.abort($j, 'done')");
}

done_testing();

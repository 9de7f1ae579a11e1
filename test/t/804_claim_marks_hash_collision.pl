# The ring of recent lowerings (src/dispatch.c) keeps a queue name of 64
# bytes or more as its length, its first 63 bytes and its hash.  Two such
# names of the same length and start whose hashes collide are one name to
# the ring: that may only lower a mark more than needed.  When a rebuild
# that makes the table complete again looks for queues lowered after its
# walk began that it does not list, it must not take a lowering of queue X
# for one of a listed queue Y whose name looks the same there: X would be
# left out of a complete table, and its job never claimed.
#
# The hash is PostgreSQL's hash_bytes(), which hashtext() also is, so a
# colliding pair of names is found in a second.  Queue Y has a candidate
# not yet due; the table is invalid (as after a start); the one executor
# is kept busy, so that only the test's own claim
# (job_engine_internal._claim()) rebuilds the table; a job is submitted to
# queue X while that claim's transaction is open.  Once the executor is
# free, the job of X must run.
#
# A plain role once kept Y listed with a job due in a year.  A job not yet
# due is now deferred, not a candidate (docs/architecture.md, "Jobs not yet
# due"); candidates not due still arise from rows written under
# session_replication_role = replica, which the guard leaves as they come,
# so the test makes Y's and marker's jobs so.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('claim_marks_hash_collision', max_workers => 1);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work', queue => 'q');
sql(q{
-- Runs until the test lets its advisory lock go.
CREATE FUNCTION gate(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(42);
    RETURN a;
END
$$;
SELECT job_engine.register_handler('gate', 'gate(jsonb)', queue => 'gate', timeout => '10 minutes');
CREATE ROLE mallory LOGIN;
});

ok(defined within(30, q{SELECT job_engine_internal._dispatch_complete()}),
	'start: the claim marks are complete');

# Two names of 70 bytes, the same first 63, with the same hash.
my ($x, $y) = split / /, sql(q{
SELECT string_agg(n, ' ' ORDER BY n) FROM (
    SELECT repeat('c', 63) || lpad(i::text, 7, '0') AS n FROM generate_series(1, 400000) i) s
 GROUP BY hashtext(n) HAVING count(*) > 1 LIMIT 1});
ok(defined $y && length($x) == 70 && length($y) == 70 && $x ne $y,
	'two 70-byte queue names with the same start and hash');

# The one executor waits in gate() until the lock goes.
my $lock = $node->background_psql('postgres');
$lock->query_safe('SELECT pg_advisory_lock(42)');
sql(q{SELECT job_engine.submit('gate', '{}')});
ok(defined within(30, q{SELECT count(*) = 1 FROM job_engine.jobs WHERE state = 'running'}),
	'the executor is busy');

# A candidate not due keeps Y in the table: mallory's job due in a year,
# made a candidate under replica by the superuser.  The table is made
# invalid, as a server start or a PREPARE makes it (here by a command on
# the triggers of _jobs), while it lists queue marker; marker's job goes,
# so that a rebuild's table no longer lists it.
sql(qq{
SET ROLE mallory;
SELECT job_engine.submit('work', '{}', queue => '$y', run_at => now() + interval '1 year');
SELECT job_engine.submit('work', '{}', queue => 'marker', run_at => now() + interval '1 year');
});
is(JobEngineNode::candidates_not_due($node, 'postgres', "queue IN ('$y', 'marker')"),
	2, 'Y and marker have candidates not due');
sql('ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard');
is(sql('SELECT job_engine_internal._dispatch_complete()'), 'f', 'the table is invalid');
sql(q{SET ROLE mallory;
SELECT job_engine.abort(id, 'gone') FROM job_engine.jobs WHERE queue = 'marker'});

# The claim's rebuild (at most once a second) walks with no job in X; a
# job of X commits before the claim does.  Until a rebuild has filled the
# table, the job is aborted and another tried.
my $claim = $node->background_psql('postgres');
my ($victim, $rebuilt);
for my $try (1 .. 200)
{
	$claim->query_safe('BEGIN');
	$claim->query_safe('SELECT count(*) FROM job_engine_internal._claim(pg_backend_pid())');
	$victim = sql(qq{SELECT job_engine.submit('work', '{"try": $try}', queue => '$x')});
	$claim->query_safe('COMMIT');
	$rebuilt = sql(q{SELECT count(*) FROM job_engine_internal._dispatch_marks() WHERE queue = 'marker'})
	  eq '0';
	last if $rebuilt;
	sql("SELECT job_engine.abort($victim, 'again')");
}
ok($rebuilt, 'a claim rebuilt the table while the job of X was submitted');

$lock->query_safe('SELECT pg_advisory_unlock(42)');
ok(defined within(30, qq{SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $victim}),
	'the job of queue X submitted during the rebuild runs')
  or diag('marks: ' . sql(q{SELECT string_agg(m::text, ' ') FROM job_engine_internal._dispatch_marks() m})
	  . "\ncomplete: " . sql('SELECT job_engine_internal._dispatch_complete()'));

$claim->quit;
$lock->quit;
$node->stop;
done_testing();

# The lifecycle guard notes each candidate's key (queue, priority, run_at,
# id) for the claim marks (src/dispatch.c) as the row reaches it.  BEFORE
# ROW triggers fire in the order of their names: one that a superuser adds
# to job_engine._jobs with a name after jobs_lifecycle_guard sees the row
# after the guard and may change the key, here a priority raised for a
# handler.  The row is then written below the key noted, and below its
# queue's mark: no claim would find it.  The marks must not be trusted
# while such a trigger exists; every job runs.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('claim_marks_trigger_after_guard', max_workers => 2);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work', queue => 'q');
sql(q{
SELECT job_engine.register_handler('urgent', 'work(jsonb)', queue => 'q');
CREATE FUNCTION boost() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.handler = 'urgent' THEN
        NEW.priority := NEW.priority - 10;
    END IF;
    RETURN NEW;
END
$$;
});
# The superuser who creates it is told what it costs.
my ($out, $err) = ('', '');
$node->psql('postgres',
	'CREATE TRIGGER zz_boost BEFORE INSERT ON job_engine._jobs FOR EACH ROW EXECUTE FUNCTION boost()',
	stdout => \$out, stderr => \$err, on_error_die => 1);
like($err, qr/WARNING:.*trigger "zz_boost" of job_engine\._jobs fires after jobs_lifecycle_guard.*HINT:.*RENAME TO/s,
	'creating a BEFORE ROW trigger that fires after the guard warns, with a hint');

# Creating the trigger made the table invalid; unless such a trigger keeps
# it so, a claim fills it again within a second or so (the executors claim
# every 200 ms).  Not asserted: either way the job below must run.
within(5, q{SELECT job_engine_internal._dispatch_complete()});

# A candidate not due keeps q in the table, its mark at or below it: a job
# due in a day, which the guard defers, made a candidate under
# session_replication_role = replica.
my $later = sql(q{SELECT job_engine.submit('work', '{}', run_at => now() + interval '1 day')});
is(JobEngineNode::candidates_not_due($node, 'postgres', "id = $later"), 1, 'a candidate not due in q');
my $id = sql(q{SELECT job_engine.submit('urgent', '{}')});
is(sql("SELECT priority FROM job_engine.jobs WHERE id = $id"), '-10', 'the trigger raised the priority');
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
	'the job whose key a trigger after the guard changed runs')
  or diag('marks: ' . sql(q{SELECT string_agg(m::text, ' ') FROM job_engine_internal._dispatch_marks() m})
	  . "\ncomplete: " . sql('SELECT job_engine_internal._dispatch_complete()'));

# Renamed to fire before the guard, the guard sees the key the trigger
# made: no warning, and the marks are used again.
($out, $err) = ('', '');
$node->psql('postgres', 'ALTER TRIGGER zz_boost ON job_engine._jobs RENAME TO boost',
	stdout => \$out, stderr => \$err, on_error_die => 1);
unlike($err, qr/WARNING/, 'a BEFORE ROW trigger that fires before the guard gets no warning');
ok(defined within(30, q{SELECT job_engine_internal._dispatch_complete()}),
	'the claim marks are rebuilt once no trigger fires after the guard');
$id = sql(q{SELECT job_engine.submit('urgent', '{}')});
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
	'and a job the renamed trigger changes runs');

$node->stop;
done_testing();

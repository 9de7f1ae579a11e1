# Claim marks when the table of marks overflows (docs/architecture.md,
# "Claim low-water marks"; src/dispatch.c).
#
# The table holds 128 queues per database.  More queues than that can have
# candidates, and a queue's name can be one the table cannot hold; that
# must not take the marks away from the queues in use.  A plain role could
# once make such candidates with jobs due in a year; a job not yet due is
# now deferred, not a candidate ("Jobs not yet due"), so that is closed.
# Candidates not yet due still arise from rows written under
# session_replication_role = replica (the guard leaves them as they come),
# and the overflow machinery still has to handle them: the test makes
# them so, from jobs submitted due in a year (undefer() below).
# 1. candidates not due in 129 queues and in a queue with a 70-byte name;
#    with an xid held, the jobs of queue q are drained, and then one claim
#    reads a number of jobs_claim_idx entries that does not grow with the
#    jobs claimed since the xid (the entries returned, in the claiming
#    transaction's statistics, as in 170); the jobs of q and of the
#    long-named queue all run;
# 2. no job is stranded while queues come and go across the 128 boundary:
#    rounds of jobs due now in many queues, some also due later, with
#    job_engine.poll_interval = 60s so that only wake-ups and the claims'
#    own reads drive the executors (a mark above a candidate, or a queue
#    no claim looks at, would leave a job waiting for ever);
# 3. job_engine_internal._dispatch_state() says 'overflow' while more
#    queues have candidates than the table holds, and 'complete' again
#    once the candidates not due are aborted and a rebuild has run;
# 4. a queue whose first job commits while a rebuild is under way is
#    listed when the rebuild completes the table, even when its name is
#    one the ring of lowerings keeps only 63 bytes of, and another listed
#    queue's name has the same start, length and hash.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'claim_marks_overflow',
	max_workers => 2,
	extra_conf => "job_engine.poll_interval = '60s'\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work', queue => 'q');
sql(q{
CREATE ROLE mallory LOGIN;
GRANT EXECUTE ON FUNCTION work(jsonb) TO mallory;
-- Not left at its defaults, so that purge keeps it while it is empty.
SELECT job_engine.configure_queue('wake', concurrency => 1000);
});

# Until the table is complete, claims walk every queue; each look wakes
# every executor (resume_queue of the empty queue 'wake'), so that claims
# come and one of them rebuilds it.
ok(defined within(30,
		q{SELECT job_engine_internal._dispatch_complete() OR (SELECT false FROM job_engine.resume_queue('wake'))}),
	'start: the claim marks are complete within 30 s');

# Makes candidates not yet due of the deferred jobs of the queues whose
# names are LIKE $_[0].
sub undefer
{
	my ($like) = @_;
	return JobEngineNode::candidates_not_due($node, 'postgres', "queue LIKE '$like'");
}

sub succeeded_within
{
	my ($seconds, $what, $where) = @_;
	ok(defined within($seconds,
			"SELECT count(*) = 0 FROM job_engine.jobs WHERE $where AND state <> 'succeeded'"),
		"$what: succeeded within $seconds s")
	  or diag sql("SELECT string_agg(id || ' ' || state || ' ' || queue || ' ' || run_at, E'\\n')"
		  . " FROM job_engine.jobs WHERE $where AND state <> 'succeeded'")
	  . "\nmarks: " . sql("SELECT string_agg(m::text, ' ') FROM job_engine_internal._dispatch_marks() m");
}

###############################################################################
# 1. candidates not due in 129 queues and a long-named queue, an xid held
###############################################################################

# A candidate not due keeps q in the table.
sql(q{SELECT job_engine.submit('work', '{"id": 0}', run_at => now() + interval '1 day', priority => 100)});
my $long = 'l' x 70;
sql(qq{
SET ROLE mallory;
SELECT count(job_engine.submit('work', '{}', queue => 'far_' || i,
                               run_at => now() + interval '1 year'))
  FROM generate_series(1, 129) i;
SELECT job_engine.submit('work', '{}', queue => '$long', run_at => now() + interval '1 year');
});
# Deferred, mallory's jobs are no candidates: the table still holds every
# queue that has some.
is(sql('SELECT job_engine_internal._dispatch_state()'), 'complete',
	'jobs due in a year, deferred, do not make the table overflow');
is(undefer('q'), 1, 'a candidate not due in q');
is(undefer('far\_%') + undefer($long), 130, 'candidates not due in 130 more queues');
is(sql('SELECT job_engine_internal._dispatch_complete()'), 'f',
	'the table of marks does not hold every queue with candidates');
is(sql('SELECT job_engine_internal._dispatch_state()'), 'overflow',
	'the table of marks says it overflows');

my $held = $node->background_psql('postgres');
$held->query_safe('BEGIN; SELECT txid_current()');

my $n = 3000;
my $first = sql(
	"SELECT min(s) FROM job_engine.submit_many('work', (SELECT array_agg(jsonb_build_object('id', i)) FROM generate_series(1, $n) i)) s");
succeeded_within(120, "held xid: $n jobs of q", "id >= $first AND queue = 'q'");
# Three claims: one of them may also rebuild the table (at most once a
# second), which reads the first entry of each queue the table leaves out.
my @reads;
for (1 .. 3)
{
	my ($claimed, $read) = JobEngineNode::claim_index_reads($node, 'postgres');
	is($claimed, 0, 'held xid: nothing is due, nothing claimed');
	push @reads, $read;
}
my ($least, $most) = (sort { $a <=> $b } @reads)[0, -1];
cmp_ok($least, '<', 20,
	"held xid: a claim reads $least entries of jobs_claim_idx, not the $n claimed since the xid was taken");
cmp_ok($most, '<', 400, "held xid: a claim that rebuilds the table reads $most entries");
like(sql(q{SELECT string_agg(m.queue, ' ') FROM job_engine_internal._dispatch_marks() m}),
	qr/(^| )q( |$)/, 'held xid: q keeps its mark');

# More jobs of q, and one now due in the long-named queue, still run.
my $second = sql(
	"SELECT min(s) FROM job_engine.submit_many('work', (SELECT array_agg(jsonb_build_object('id', i)) FROM generate_series(1, 100) i)) s");
sql(qq{SET ROLE mallory; SELECT job_engine.submit('work', '{}', queue => '$long')});
succeeded_within(60, 'held xid: more jobs of q', "id >= $second AND queue = 'q'");
succeeded_within(60, 'held xid: the due job of the long-named queue',
	"queue = '$long' AND run_at <= now()");
$held->query_safe('COMMIT');
$held->quit;

###############################################################################
# 2. queues coming and going across the 128 boundary
###############################################################################

for my $round (1 .. 4)
{
	my $queues = 100 + 15 * $round;
	# Jobs due now in $queues queues, in a few transactions, some queues
	# with a job due a moment later of a better priority, and q in between.
	sql(qq{
SELECT count(job_engine.submit('work', jsonb_build_object('round', $round),
                               queue => 'churn_${round}_' || i))
  FROM generate_series(1, $queues / 2) i;
SELECT count(job_engine.submit('work', jsonb_build_object('round', $round),
                               queue => 'churn_${round}_' || i, priority => -1,
                               run_at => now() + interval '2 seconds'))
  FROM generate_series(1, $queues, 7) i;
SELECT job_engine.submit('work', jsonb_build_object('round', $round));
SELECT count(job_engine.submit('work', jsonb_build_object('round', $round),
                               queue => 'churn_${round}_' || i))
  FROM generate_series($queues / 2 + 1, $queues) i;
});
	succeeded_within(60, "round $round: jobs in $queues queues",
		"args ->> 'round' = '$round'");
}

# The queues with candidates not due are still there: the table
# overflows, and a job submitted now, to a queue seen before or a new one,
# still runs.
sql(q{SELECT job_engine.submit('work', '{"last": 1}', queue => 'churn_1_1')});
sql(q{SELECT job_engine.submit('work', '{"last": 2}', queue => 'brand_new')});
succeeded_within(30, 'jobs after the churn', q{args ? 'last'});
is(sql('SELECT job_engine_internal._dispatch_state()'), 'overflow',
	'after the churn: the table of marks still overflows');

# 3. Once the candidates not due are gone, a rebuild completes the table.
sql(q{SELECT count(job_engine.abort(id, 'test over')) FROM job_engine.jobs
       WHERE state IN ('created', 'retrying') AND queue <> 'q'});
ok(defined within(30,
		q{SELECT job_engine_internal._dispatch_state() = 'complete' OR (SELECT false FROM job_engine.resume_queue('wake'))}),
	'candidates not due aborted: the claim marks are complete again within 30 s')
  or diag sql('SELECT job_engine_internal._dispatch_state()');

###############################################################################
# 4. two long names the ring of lowerings tells apart only by their end
###############################################################################

# The ring keeps the first 63 bytes of a name, its length and its hash.
# A and B: 70 bytes, the same first 63, the same hash (hashtext() hashes
# the bytes as the table does; where it hashes these two apart, another
# pair is looked for).
my ($a, $b) = map { ('c' x 62) . $_ } ('00000480', '0000a593');
($a, $b) = split /\|/, sql(q{
WITH c AS (SELECT repeat('c', 62) || lpad(to_hex(i), 8, '0') AS n
             FROM generate_series(1, 400000) i),
     h AS (SELECT hashtext(n) AS h FROM c GROUP BY 1 HAVING count(*) > 1 LIMIT 1)
SELECT string_agg(n, '|') FROM c WHERE hashtext(n) = (SELECT h FROM h)})
  if sql("SELECT hashtext('$a') <> hashtext('$b')") eq 't';
ok(defined $b && length($a) == 70 && length($b) == 70
	  && sql("SELECT hashtext('$a') = hashtext('$b')") eq 't',
	'two 70-byte names with one hash');
sql(qq{SELECT job_engine.configure_queue('$b', concurrency => 1000);
SELECT job_engine.pause_queue('$b')});
sql(qq{SELECT job_engine.submit('work', '{"queue": "a"}', queue => '$a', run_at => now() + interval '1 day')});
is(undefer($a), 1, 'a candidate not due in A');

# The table overflows (129 more queues), and a claim in a session that
# aborts their jobs rebuilds it: complete, with A, when it commits.  B's
# first job commits in between; as the table then overflows, its lowering
# only goes into the ring, where it matches A.  The rebuild must list B:
# in a complete table, a queue not listed has no candidate, and B's job
# would wait for ever once B is resumed.
my $tries = 0;
my $state = '';
my $b_job;
while ($state ne 'complete' && ++$tries <= 10)
{
	sql(q{SELECT count(job_engine.submit('work', '{"ovf": 1}', queue => 'ovf_' || i,
	                                        run_at => now() + interval '1 year'))
	        FROM generate_series(1, 129) i});
	undefer('ovf\_%');
	# A rebuild is tried at most once a second: the claims this submit
	# woke may have just tried one.  Retried below if this one was not.
	sql('SELECT pg_sleep(1.1)');
	my $rebuilder = $node->background_psql('postgres');
	$rebuilder->query_safe(q{BEGIN;
SELECT count(job_engine.abort(id, 'test over')) FROM job_engine.jobs
 WHERE queue LIKE 'ovf\_%' AND state = 'created';
SELECT count(*) FROM job_engine_internal._claim(pg_backend_pid())});
	$b_job = sql(qq{SELECT job_engine.submit('work', '{"queue": "b"}', queue => '$b')});
	$rebuilder->query_safe('COMMIT');
	$rebuilder->quit;
	$state = sql('SELECT job_engine_internal._dispatch_state()');
	sql("SELECT job_engine.abort($b_job, 'test over')") if $state ne 'complete';
}
is($state, 'complete', "a rebuild completed the table while B's first job committed (try $tries)");
is(sql(qq{SELECT count(*) FROM job_engine_internal._dispatch_marks() WHERE queue IN ('$a', '$b')}),
	2, 'both long names are listed');
sql(qq{SELECT job_engine.resume_queue('$b')});
succeeded_within(30, "B's job", "id = $b_job");

$node->stop;
done_testing();

# Claim low-water marks (docs/architecture.md, "Claim low-water marks";
# src/dispatch.c).
#
# 1. The point: with a session holding an xid, the index entries of the
#    jobs claimed since cannot be marked dead; a claim must not walk them.
#    One claim's reads of jobs_claim_idx (index entries returned, counted in
#    the claiming transaction's statistics) stay under a bound that does not
#    grow with the N jobs claimed since the xid was taken.
# 2. What must never happen: a claimable job that no claim finds.  With
#    job_engine.poll_interval = 60s nothing but wake-ups and the claims'
#    own reads drives the executors, and every scenario below must see its
#    jobs succeed within a bound: a mark left above a candidate would leave
#    that job waiting for ever (a poll reads the same marks).
#      a. a transaction that began before claims advanced the mark commits
#         a job that sorts before everything claimed since
#      b. priorities mixed with future run_at
#      c. a claim rolled back after the same transaction claimed past a job
#         (_claim() twice, then ROLLBACK), the executors all busy
#      d. retry, e. unblock of a dependant, f. an ordering key's release,
#         each after the mark moved past the job's key
#      g. a queue paused and resumed
#      h. more queues with jobs than the table holds, then complete again,
#         and a queue name too long for the table
#      i. PREPARE TRANSACTION of a submit, COMMIT PREPARED later
#      j. a restart with jobs waiting
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'claim_marks',
	max_workers => 2,
	extra_conf => "job_engine.poll_interval = '60s'\n"
	  . "max_prepared_transactions = 4\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

sql(q{
CREATE EXTENSION job_engine;
CREATE TABLE knobs (release boolean NOT NULL);
INSERT INTO knobs VALUES (false);
-- Sleeps a['sleep'] seconds, then fails its first attempt when a['fail_once'].
CREATE FUNCTION work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(COALESCE((a ->> 'sleep')::float8, 0));
    IF (a ->> 'fail_once')::boolean
       AND (SELECT attempts FROM job_engine.jobs WHERE id = job_engine.current_job_id()) = 1 THEN
        RAISE EXCEPTION 'failing once on purpose';
    END IF;
    RETURN a;
END
$$;
-- Runs until knobs.release (or 120 s).
CREATE FUNCTION block(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    WHILE NOT (SELECT release FROM knobs) AND clock_timestamp() < t0 + interval '120 seconds' LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN a;
END
$$;
SELECT job_engine.register_handler('work', 'work(jsonb)', queue => 'q',
                                   backoff_base => '1 second', backoff_max => '1 second');
SELECT job_engine.register_handler('block', 'block(jsonb)', queue => 'blk', max_attempts => 1);
-- Not left at its defaults, so that purge keeps it while it is empty.
SELECT job_engine.configure_queue('wake', concurrency => 1000);
SELECT job_engine.configure_queue('p', concurrency => 1000);
SELECT job_engine.configure_queue('r', concurrency => 1000);
});

# Waits for the table to be complete: until then claims walk every queue,
# and one of them rebuilds the table now and then.  Each look wakes every
# executor (resume_queue of the empty queue 'wake'), so that claims come.
sub complete_within
{
	my ($what) = @_;
	ok(defined within(30,
			q{SELECT job_engine_internal._dispatch_complete() OR (SELECT false FROM job_engine.resume_queue('wake'))}),
		"$what: the claim marks are complete within 30 s");
}

# Ids of n jobs of handler 'work' with these extra submit arguments, and
# these extra keys of its argument.
my $serial = 0;
sub submit
{
	my ($n, $args, $keys) = @_;
	$args = defined $args ? ", $args" : '';
	$keys = defined $keys ? ", $keys" : '';
	my @ids;
	for (1 .. $n)
	{
		$serial++;
		push @ids, sql("SELECT job_engine.submit('work', '{\"id\": $serial$keys}'$args)");
	}
	return @ids;
}

sub succeeded_within
{
	my ($seconds, $what, @ids) = @_;
	my $list = join(',', @ids);
	my $n = scalar @ids;
	ok(defined within($seconds,
			"SELECT count(*) = $n FROM job_engine.jobs WHERE id IN ($list) AND state = 'succeeded'"),
		"$what: succeeded within $seconds s")
	  or diag sql("SELECT string_agg(id || ' ' || state || ' ' || queue || ' ' || run_at, E'\\n')"
		  . " FROM job_engine.jobs WHERE id IN ($list)")
	  . "\nmarks: " . sql("SELECT string_agg(m::text, ' ') FROM job_engine_internal._dispatch_marks() m");
}

complete_within('start');

###############################################################################
# 1. a held xid: a claim does not walk the jobs claimed since
###############################################################################

my $held = $node->background_psql('postgres');
$held->query_safe('BEGIN; SELECT txid_current()');

# A candidate not due at the end of the queue keeps the queue in the
# table, so that the claim below walks q from its mark to it.  A job due in
# a day is deferred, no candidate (docs/architecture.md, "Jobs not yet
# due"): written under session_replication_role = replica, which the guard
# leaves as it comes, it is one.
my $zero = sql(q{SELECT job_engine.submit('work', '{"id": 0}', run_at => now() + interval '1 day', priority => 100)});
is(JobEngineNode::candidates_not_due($node, 'postgres', "id = $zero"),
	1, 'held xid: a candidate not due at the end of q');
my $n = 3000;
my $first = sql(
	"SELECT min(s) FROM job_engine.submit_many('work', (SELECT array_agg(jsonb_build_object('id', -i)) FROM generate_series(1, $n) i)) s");
ok(defined within(120,
		"SELECT count(*) = $n FROM job_engine.jobs WHERE id >= $first AND handler = 'work' AND state = 'succeeded' AND priority = 0"),
	"held xid: $n jobs claimed since the xid drain");
complete_within('held xid');
my ($claimed, $read) = JobEngineNode::claim_index_reads($node, 'postgres');
is($claimed, 0, 'held xid: nothing is due, nothing claimed');
cmp_ok($read, '<', 50,
	"held xid: one claim reads $read entries of jobs_claim_idx, not the $n claimed since the xid was taken");
$held->query_safe('COMMIT');
$held->quit;

###############################################################################
# 2. never a claimable job that no claim finds
###############################################################################

# a. A transaction that began before the claims commits the earliest job.
my $early = $node->background_psql('postgres');
my $a_id = $early->query_safe(
	q{BEGIN; SELECT job_engine.submit('work', '{"id": 1000001}', run_at => now() - interval '1 hour')});
$a_id =~ s/\s+//g;
my @fill = submit(20);
succeeded_within(30, 'a. later jobs, claimed while an earlier one is uncommitted', @fill);
$early->query_safe('COMMIT');
$early->quit;
succeeded_within(30, 'a. the earlier job committed after the mark moved on', $a_id);

# b. Priorities mixed with future run_at.
my @future = submit(1, "priority => -10, run_at => now() + interval '3 seconds'");
my @later = submit(1, "priority => 5, run_at => now() + interval '2 seconds'");
my @now = submit(5);
succeeded_within(30, 'b. due jobs behind a future job of a better priority', @now);
succeeded_within(30, 'b. the future jobs, once due', @future, @later);

# c. The executors busy, a session claims twice and rolls back.
my $blockers = sql(q{SELECT count(job_engine.submit('block', '{}')) FROM generate_series(1, 2)});
ok(defined within(30, q{SELECT count(*) = 2 FROM job_engine.jobs WHERE handler = 'block' AND state = 'running'}),
	'c. both executors run a blocker');
my @two = submit(2);
my $claims = sql(q{
BEGIN;
SELECT string_agg(job_id::text, ',') FROM job_engine_internal._claim(pg_backend_pid());
SELECT string_agg(job_id::text, ',') FROM job_engine_internal._claim(pg_backend_pid());
ROLLBACK;
});
is($claims, join("\n", @two), 'c. the session claims both jobs, one by one, then rolls back');
sql('UPDATE knobs SET release = true');
succeeded_within(30, 'c. both jobs whose claims rolled back', @two);
sql('UPDATE knobs SET release = false');

# d. Retry: while the first attempt runs, the other executor claims jobs
# of a later priority, so the retry sorts before the mark.
my @retry = submit(1, undef, '"fail_once": true, "sleep": 1');
my @after = submit(20, 'priority => 1');
succeeded_within(30, 'd. a job retried after the mark moved on', @retry, @after);

# e. A dependant released after the mark moved past it.
my ($pre) = submit(1, undef, '"sleep": 1');
my ($dep) = submit(1, "depends_on => ARRAY[$pre]::bigint[]");
my @more = submit(20, 'priority => 1');
succeeded_within(30, 'e. a dependant released after the mark moved on', $pre, $dep, @more);

# f. An ordering key released after the mark moved past the next job.
my ($k1) = submit(1, "ordering_key => 'k'", '"sleep": 1');
my ($k2) = submit(1, "ordering_key => 'k'");
my @more2 = submit(20, 'priority => 1');
succeeded_within(30, 'f. the next job of an ordering key, released after the mark moved on', $k1, $k2, @more2);

# g. A paused queue, resumed.
sql(q{SELECT job_engine.pause_queue('p')});
my @paused = submit(3, "queue => 'p'");
my @other = submit(10);
succeeded_within(30, 'g. other queues drain while p is paused', @other);
sql(q{SELECT job_engine.resume_queue('p')});
succeeded_within(30, 'g. the paused queue\'s jobs, once resumed', @paused);

# h. More queues than the table holds.
my @wide = map { submit(1, "queue => 'wide_$_'") } 1 .. 150;
succeeded_within(60, 'h. one job in each of 150 queues', @wide);
complete_within('h. after the overflow');
my @after_wide = submit(5);
succeeded_within(30, 'h. jobs after the table was rebuilt', @after_wide);

# h2. Long queue names: held whole, up to 200 characters of 2 bytes each.
my $long = 'long_' . ('x' x 95);
sql(qq{SELECT job_engine.configure_queue('$long', concurrency => 1000)});
my @long = submit(3, "queue => '$long'");
succeeded_within(30, 'h2. jobs of a queue with a long name', @long);
# 'w' and 199 times U+00E9 (2 bytes in UTF-8): a name of 200 characters.
my $wide = q{'w' || repeat(chr(233), 199)};
# A job waits there: the queue is paused (a job not yet due would be
# deferred, not a candidate).
sql(qq{SELECT job_engine.configure_queue($wide); SELECT job_engine.pause_queue($wide)});
my ($waits) = submit(1, "queue => $wide");
complete_within('h2. with a job waiting in a queue with a 200-character name');
is(sql(qq{SELECT count(*) FROM job_engine_internal._dispatch_marks() WHERE queue = $wide}),
	1, 'h2. the table holds the 200-character name');
sql("SELECT job_engine.abort($waits, 'test over')");

# i. A prepared submit.
my $prep = $node->background_psql('postgres');
my $p_id = $prep->query_safe(
	q{BEGIN; SELECT job_engine.submit('work', '{"id": 3000001}', run_at => now() - interval '1 hour')});
$p_id =~ s/\s+//g;
$prep->query_safe(q{PREPARE TRANSACTION 'marks'});
$prep->quit;
my @during = submit(10);
succeeded_within(30, 'i. jobs submitted while a submit is prepared', @during);
is(sql('SELECT job_engine_internal._dispatch_complete()'), 'f',
	'i. the marks are incomplete while a prepared transaction holds jobs');
sql(q{COMMIT PREPARED 'marks'});
# COMMIT PREPARED wakes nobody: the next submit's wake-up finds the job.
my @wake = submit(1);
succeeded_within(30, 'i. the prepared job, once committed', $p_id, @wake);
complete_within('i. after COMMIT PREPARED');

# j. A restart with jobs waiting.
sql(q{SELECT job_engine.pause_queue('r')});
my @restart = submit(3, "queue => 'r'");
$node->restart;
complete_within('j. after a restart');
sql(q{SELECT job_engine.resume_queue('r')});
succeeded_within(30, 'j. jobs that waited across a restart', @restart);

is(sql(qq{SELECT count(*) FROM job_engine.jobs WHERE handler = 'work' AND state <> 'succeeded' AND id <> $waits}),
	1, 'every job but the delayed one (and the one aborted) succeeded');

$node->stop;
done_testing();

# Faults while jobs run: no job is lost, no effect is committed twice.
#
#  a. kill -9 of the supervisor, then of the launcher, while attempts run:
#     the postmaster reinitializes; afterwards every job is terminal, the
#     interrupted attempts are 'crashed', every job's effect is there once.
#  b. An immediate stop (a power cut) in the middle of 5000 short jobs, half
#     of them in a queue that groups commits: all 5000 succeed after the
#     restart, each effect exactly once.
#  c. Native handlers that raise ERROR (retried) and FATAL (crashed
#     attempts, no server restart, same supervisor).
#  d. A runaway handler is stopped by its timeout (SQLSTATE 57014).
#  e. A handler that swallows its cancel: abort() records 'aborted' at once
#     and, after job_engine.abort_grace, its executor is terminated, its
#     writes rolled back, and a replacement executor serves new jobs.
#  f. Completion racing abort(): every job ends with one consistent outcome.
#  g. A LISTEN client idle in an open transaction holds no outcome back.
#  h. A job that keeps failing for as long as its policy allows: the 41st
#     failure is recorded and retried like the first, without disturbing
#     the workers.
#
# Every handler writes (job id, attempt) into `effects` in the attempt's own
# transaction, so the table shows exactly which attempts committed.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node(
	'faults',
	max_workers => 2,
	extra_conf => q{
job_engine.abort_grace = 1s
# Cluster.pm turns this off; the kill -9 cases need the crash restart.
restart_after_crash = on
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE TABLE effects (job_id bigint NOT NULL, attempt int NOT NULL);
-- Attempts read their sleep cap when they start: lowering it lets the jobs
-- queued behind an interrupted one drain fast, while the attempts already
-- running keep sleeping until the fault hits them.
}
	  . JobEngineNode::slow_handler_sql(30) . q{
CREATE FUNCTION tiny(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int);
    PERFORM pg_sleep(0.001);
    RETURN NULL;
END
$$;
CREATE FUNCTION runaway(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(60);
    RETURN '{}';
END
$$;
-- Writes, then swallows every cancel and never returns.
CREATE FUNCTION stubborn(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int);
    LOOP
        BEGIN
            PERFORM pg_sleep(0.1);
        EXCEPTION WHEN query_canceled THEN
            NULL;
        END;
    END LOOP;
END
$$;
CREATE FUNCTION quick(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int);
    PERFORM pg_sleep((a ->> 'ms')::float8 / 1000);
    RETURN '{"done": true}';
END
$$;
SELECT job_engine.register_handler('slow', 'slow(jsonb)', max_attempts => 5,
                                   backoff_base => '50 ms', backoff_max => '50 ms');
SELECT job_engine.register_handler('tiny', 'tiny(jsonb)', queue => 'bulk',
                                   backoff_base => '50 ms', backoff_max => '50 ms');
SELECT job_engine.register_handler('runaway', 'runaway(jsonb)', max_attempts => 1,
                                   timeout => '300 ms');
SELECT job_engine.register_handler('stubborn', 'stubborn(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('quick', 'quick(jsonb)', max_attempts => 1);
SELECT job_engine.register_c_handler('c_flaky', '$libdir/job_engine_example', 'flaky_handler',
                                     backoff_base => '50 ms', backoff_max => '50 ms');
SELECT job_engine.register_c_handler('c_fatal', '$libdir/job_engine_example', 'fatal_handler',
                                     max_attempts => 2, backoff_base => '50 ms',
                                     backoff_max => '50 ms');
SELECT job_engine.configure_queue('bulk_gc', group_commit => 16);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub backend_pid
{
	my ($type) = @_;
	return sql("SELECT pid FROM pg_stat_activity WHERE backend_type = '$type'");
}

sub terminal { return "state IN ('succeeded', 'failed', 'aborted')"; }

# ---------------------------------------------------------------------------
# a. kill -9 of the supervisor or the launcher while attempts run
# ---------------------------------------------------------------------------

sub kill_while_running
{
	my ($name, $victim_type) = @_;
	my $njobs = 8;

	sql('UPDATE knobs SET max_sleep = 30');
	my $first = sql(qq{
SELECT min(id) FROM job_engine.submit_many('slow',
        array_fill('{"sleep": 30}'::jsonb, ARRAY[$njobs])) AS s(id)});
	my $batch = "id >= $first AND handler = 'slow'";

	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 2 FROM job_engine.jobs j
  JOIN job_engine.attempts a ON a.job_id = j.id AND a.attempt = j.attempts
 WHERE j.$batch AND j.state = 'running' AND a.outcome = 'running'}),
		"$name: two attempts are running");
	my $running = sql(qq{
SELECT string_agg(id::text, ',' ORDER BY id) FROM job_engine.jobs
 WHERE $batch AND state = 'running'});
	# The running attempts keep sleeping; whatever starts later is quick.
	sql('UPDATE knobs SET max_sleep = 0.05');

	my $victim = backend_pid($victim_type);
	like($victim, qr/^\d+$/, "$name: the $victim_type runs as process $victim");
	my $log_offset = -s $node->logfile;
	is(kill('KILL', $victim), 1, "$name: $victim_type killed with SIGKILL");
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$log_offset);
	ok($node->poll_query_until('postgres', 'SELECT true'),
		"$name: the server accepts connections after reinitializing");

	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM job_engine.jobs WHERE $batch AND NOT " . terminal()),
		"$name: every job reaches a terminal state");
	is(sql("SELECT string_agg(DISTINCT state::text, ',') FROM job_engine.jobs WHERE $batch"),
		'succeeded', "$name: every job succeeded");
	is(sql("SELECT count(*) FROM job_engine.jobs WHERE state = 'running'"),
		'0', "$name: no job is left running");
	is(sql("SELECT count(*) FROM job_engine.attempts WHERE outcome = 'running'"),
		'0', "$name: no attempt is left running");
	is( sql(qq{
SELECT string_agg(job_id || ':' || attempt, ',' ORDER BY job_id)
  FROM job_engine.attempts WHERE job_id >= $first AND outcome = 'crashed'}),
		join(',', map { "$_:1" } split(/,/, $running)),
		"$name: exactly the attempts that were running are recorded crashed");
	is( sql(qq{
SELECT count(*) FROM job_engine.jobs j
 WHERE j.$batch
   AND (SELECT count(*) FROM effects e WHERE e.job_id = j.id) <> 1}),
		'0', "$name: each succeeded job has its effect exactly once");
	is( sql(qq{
SELECT count(*) FROM effects e JOIN job_engine.jobs j ON j.id = e.job_id
 WHERE j.$batch AND (e.attempt <> j.attempts OR j.result ->> 'attempt' <> e.attempt::text)}),
		'0', "$name: each effect comes from the attempt that succeeded");
	is( sql(qq{
SELECT count(*) FROM job_engine.jobs j
 WHERE j.$batch
   AND j.attempts <> (SELECT count(*) FROM job_engine.attempts a WHERE a.job_id = j.id)}),
		'0', "$name: the attempts column matches the attempt rows");
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'}),
		"$name: a supervisor runs again");
	return;
}

kill_while_running('supervisor kill', 'job_engine supervisor');
kill_while_running('launcher kill', 'job_engine launcher');

# ---------------------------------------------------------------------------
# b. immediate stop in the middle of 5000 jobs
# ---------------------------------------------------------------------------
{
	my $n = 5000;
	my $half = $n / 2;
	my $first = sql(qq{
SELECT min(id) FROM (
    SELECT job_engine.submit_many('tiny', array_fill('{}'::jsonb, ARRAY[$half])) AS id
    UNION ALL
    SELECT job_engine.submit_many('tiny', array_fill('{}'::jsonb, ARRAY[$half]),
                                  queue => 'bulk_gc')) s});
	my $batch = "id >= $first AND handler = 'tiny'";

	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) >= 300 FROM job_engine.jobs WHERE $batch AND state = 'succeeded'"),
		'bulk: jobs are completing');
	my $done_before = sql(
		"SELECT count(*) FROM job_engine.jobs WHERE $batch AND state = 'succeeded'");
	$node->stop('immediate');
	$node->start;
	note "bulk: $done_before of $n jobs had succeeded at the immediate stop";
	cmp_ok($done_before, '<', $n, 'bulk: the stop came while jobs were still waiting');

	my $t0 = time;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM job_engine.jobs WHERE $batch AND NOT " . terminal()),
		"bulk: all $n jobs reach a terminal state after the restart");
	note sprintf('bulk: the rest drained in %.1f s', time - $t0);
	is(sql("SELECT count(*) FROM job_engine.jobs WHERE $batch"), $n, "bulk: no job is lost");
	is(sql("SELECT state || ' ' || count(*) FROM job_engine.jobs WHERE $batch GROUP BY state"),
		"succeeded $n", "bulk: all $n jobs succeeded");
	is( sql(qq{
SELECT count(DISTINCT e.job_id) || ' ' || count(*)
  FROM effects e JOIN job_engine.jobs j ON j.id = e.job_id WHERE j.$batch}),
		"$n $n", 'bulk: one effect per job: count(distinct job_id) = count(*) = 5000');
	is( sql(qq{
SELECT j.queue || ' ' || count(*) FROM effects e JOIN job_engine.jobs j ON j.id = e.job_id
 WHERE j.$batch GROUP BY j.queue ORDER BY j.queue}),
		"bulk $half\nbulk_gc $half", 'bulk: with and without group commit alike');
	is( sql(qq{
SELECT count(*) FROM effects e JOIN job_engine.jobs j ON j.id = e.job_id
 WHERE j.$batch AND e.attempt <> j.attempts}),
		'0', 'bulk: each effect comes from the attempt that succeeded');
	is(sql("SELECT count(*) FROM job_engine.jobs WHERE state = 'running'"),
		'0', 'bulk: no job is left running');
	is(sql("SELECT count(*) FROM job_engine.attempts WHERE outcome = 'running'"),
		'0', 'bulk: no attempt is left running');
	is( sql(qq{
SELECT count(*) FROM job_engine.jobs j
 WHERE j.$batch
   AND j.attempts <> (SELECT count(*) FROM job_engine.attempts a WHERE a.job_id = j.id)}),
		'0', 'bulk: the attempts column matches the attempt rows');
	note 'bulk: crashed attempts: '
	  . sql(qq{SELECT count(*) FROM job_engine.attempts a JOIN job_engine.jobs j ON j.id = a.job_id
              WHERE j.$batch AND a.outcome = 'crashed'});
}

# ---------------------------------------------------------------------------
# c. native handlers raising ERROR and FATAL
# ---------------------------------------------------------------------------
{
	my $supervisor = backend_pid('job_engine supervisor');
	my $log_offset = -s $node->logfile;

	my $flaky = sql("SELECT job_engine.submit('c_flaky')");
	ok( $node->poll_query_until(
			'postgres', "SELECT " . terminal() . " FROM job_engine.jobs WHERE id = $flaky"),
		'C ERROR: the job finishes');
	is(sql("SELECT state || ' ' || attempts || ' ' || result::text FROM job_engine.jobs WHERE id = $flaky"),
		'succeeded 2 {"ok": true}', 'C ERROR: succeeded on attempt 2 with its result');
	is( sql(qq{
SELECT string_agg(concat_ws('|', attempt, outcome, sqlstate, message, detail, hint), E'\n' ORDER BY attempt)
  FROM job_engine.attempts WHERE job_id = $flaky}),
		"1|failed|40001|flaky_handler fails its first attempt|Job $flaky.|The retry will succeed.\n"
		  . '2|succeeded',
		'C ERROR: attempt 1 failed with the full error (40001, detail, hint), attempt 2 succeeded');

	my $fatal = sql("SELECT job_engine.submit('c_fatal')");
	ok( $node->poll_query_until(
			'postgres', "SELECT " . terminal() . " FROM job_engine.jobs WHERE id = $fatal"),
		'C FATAL: the job finishes');
	is(sql("SELECT state || ' ' || attempts FROM job_engine.jobs WHERE id = $fatal"),
		'failed 2', 'C FATAL: failed after max_attempts = 2');
	is( sql(qq{
SELECT string_agg(attempt || ':' || outcome || ':' || (finished_at IS NOT NULL), ',' ORDER BY attempt)
  FROM job_engine.attempts WHERE job_id = $fatal}),
		'1:crashed:true,2:crashed:true', 'C FATAL: both attempts recorded crashed, with a finish time');
	isnt(sql("SELECT coalesce(last_error, '') FROM job_engine.jobs WHERE id = $fatal"),
		'', 'C FATAL: the job carries a last error');
	is(backend_pid('job_engine supervisor'), $supervisor,
		'C FATAL: the same supervisor still runs');
	my $after = sql("SELECT job_engine.submit('quick', '{\"ms\": 0}')");
	ok( $node->poll_query_until(
			'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $after"),
		'C FATAL: a later job succeeds');
	my $log = slurp_file($node->logfile, $log_offset);
	unlike($log, qr/terminating any other active server processes|all server processes terminated/,
		'C FATAL: no crash restart of the server');
	like($log, qr/fatal_handler ends its process/, 'C FATAL: the FATAL is in the server log');
}

# ---------------------------------------------------------------------------
# d. a runaway handler stopped by its timeout
# ---------------------------------------------------------------------------
{
	my $t0 = time;
	my $job = sql("SELECT job_engine.submit('runaway')");
	ok( $node->poll_query_until(
			'postgres', "SELECT " . terminal() . " FROM job_engine.jobs WHERE id = $job"),
		'timeout: the runaway job finishes');
	my $elapsed = time - $t0;
	cmp_ok($elapsed, '<', 20, sprintf('timeout: well before its 60 s sleep (%.1f s)', $elapsed));
	is(sql("SELECT state FROM job_engine.jobs WHERE id = $job"), 'failed', 'timeout: the job failed');
	is(sql("SELECT outcome || ' ' || sqlstate FROM job_engine.attempts WHERE job_id = $job"),
		'failed 57014', 'timeout: the attempt failed with SQLSTATE 57014');
	cmp_ok(
		sql(qq{SELECT extract(epoch FROM finished_at - started_at) FROM job_engine.attempts
              WHERE job_id = $job}), '<', 10, 'timeout: the attempt lasted about its 300 ms timeout');
}

# ---------------------------------------------------------------------------
# e. abort of a handler that swallows its cancel
# ---------------------------------------------------------------------------
{
	my $log_offset = -s $node->logfile;
	my $job = sql("SELECT job_engine.submit('stubborn')");
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT j.state = 'running' AND a.outcome = 'running'
  FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
 WHERE j.id = $job}),
		'stubborn: the attempt is running');
	my $pid = sql("SELECT worker_pid FROM job_engine.attempts WHERE job_id = $job");
	# The handler's insert is done before it starts looping.
	usleep(300_000);

	my $t0 = time;
	is(sql("SELECT job_engine.abort($job, 'operator said stop')"), 't', 'stubborn: abort() returns true');
	is( sql(qq{SELECT state || ' / ' || abort_reason FROM job_engine.jobs WHERE id = $job}),
		'aborted / operator said stop', 'stubborn: the job is aborted at once, with the reason');
	is( sql(qq{SELECT outcome || ' / ' || coalesce(message, '') FROM job_engine.attempts WHERE job_id = $job}),
		'aborted / operator said stop', 'stubborn: its attempt is recorded aborted');

	ok( $node->poll_query_until(
			'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
		"stubborn: executor $pid is gone");
	my $elapsed = time - $t0;
	cmp_ok($elapsed, '<', 10, sprintf('stubborn: within a few seconds (%.1f s)', $elapsed));
	$node->wait_for_log(qr/job $job ignored its abort/, $log_offset);
	pass('stubborn: the log says the job ignored its abort');

	my $next = sql("SELECT job_engine.submit('quick', '{\"ms\": 0}')");
	my $next2 = sql("SELECT job_engine.submit('quick', '{\"ms\": 0}')");
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($next, $next2) AND state = 'succeeded'"),
		'stubborn: new jobs are served afterwards');
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'job_engine executor'"),
		'stubborn: a replacement executor runs');
	is(sql("SELECT count(*) FROM effects WHERE job_id = $job"), '0',
		"stubborn: the handler's writes were rolled back");
	is(sql("SELECT state || ' ' || attempts FROM job_engine.jobs WHERE id = $job"), 'aborted 1',
		'stubborn: the job stays aborted and is not run again');
	is(sql("SELECT string_agg(outcome::text, ',') FROM job_engine.attempts WHERE job_id = $job"),
		'aborted', 'stubborn: the terminated attempt stays recorded aborted, not crashed');
	unlike(slurp_file($node->logfile, $log_offset), qr/all server processes terminated/,
		'stubborn: no crash restart of the server');
}

# ---------------------------------------------------------------------------
# f. completion racing abort()
# ---------------------------------------------------------------------------
{
	my $iterations = 50;
	my $script = '';
	for my $i (1 .. $iterations)
	{
		my $ms = $i % 5;                # handler's own sleep, 0..4 ms
		my $gap = ($i * 7 % 11) / 1000;  # between submit and abort, 0..10 ms
		$script .= qq{SELECT job_engine.submit('quick', '{"ms": $ms}') AS j \\gset\n};
		$script .= qq{SELECT pg_sleep($gap);\n} if $gap > 0;
		$script .= qq{SELECT :j || ' ' || job_engine.abort(:j, 'race $i');\n};
	}
	my $out = sql($script);
	my %aborted;
	for my $line (split /\n/, $out)
	{
		$aborted{$1} = $2 if $line =~ /^(\d+) (true|false)$/;
	}
	is(scalar(keys %aborted), $iterations, "race: $iterations submits, each aborted at once");
	my $ids = join(',', sort { $a <=> $b } keys %aborted);

	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM job_engine.jobs WHERE id IN ($ids) AND NOT " . terminal()),
		'race: every job is terminal');

	my $rows = sql(qq{
SELECT j.id, j.state, coalesce(j.abort_reason, '-'),
       (SELECT count(*) FROM job_engine.attempts a WHERE a.job_id = j.id),
       coalesce((SELECT string_agg(a.outcome::text, ',' ORDER BY a.attempt)
                   FROM job_engine.attempts a WHERE a.job_id = j.id), '-'),
       (SELECT count(*) FROM effects e WHERE e.job_id = j.id)
  FROM job_engine.jobs j WHERE j.id IN ($ids) ORDER BY j.id});
	my ($succeeded, $aborted_waiting, $aborted_running, @bad) = (0, 0, 0);
	for my $row (split /\n/, $rows)
	{
		my ($id, $state, $reason, $nattempts, $outcomes, $neffects) = split /\|/, $row;
		my $abort_result = $aborted{$id};
		if (   $state eq 'succeeded'
			&& $abort_result eq 'false'
			&& $nattempts == 1
			&& $outcomes eq 'succeeded'
			&& $neffects == 1
			&& $reason eq '-')
		{
			$succeeded++;
		}
		elsif ($state eq 'aborted'
			&& $abort_result eq 'true'
			&& $reason =~ /^race \d+$/
			&& $neffects == 0
			&& ($nattempts == 0 || ($nattempts == 1 && $outcomes eq 'aborted')))
		{
			$nattempts == 0 ? $aborted_waiting++ : $aborted_running++;
		}
		else
		{
			push @bad, "$row abort=$abort_result";
		}
	}
	note "race: $succeeded succeeded first, $aborted_waiting aborted while waiting, "
	  . "$aborted_running aborted while running";
	is_deeply(\@bad, [],
		'race: each job either succeeded (abort false, one succeeded attempt, one effect) '
		  . 'or was aborted (abort true, no attempt or an aborted one, no effect)');
	is(sql("SELECT count(*) FROM job_engine.attempts WHERE outcome = 'running'"),
		'0', 'race: no attempt is left running');
}

# ---------------------------------------------------------------------------
# g. a listener idle in an open transaction
# ---------------------------------------------------------------------------
{
	my $listener = $node->background_psql('postgres');
	my $listener_pid = $listener->query_safe('SELECT pg_backend_pid()');
	$listener_pid =~ s/\s+//g;
	$listener->query_safe('BEGIN; LISTEN job_engine; SELECT 1;');

	my $t0 = time;
	my $first = sql(qq{
SELECT min(id) FROM job_engine.submit_many('quick', array_fill('{"ms": 0}'::jsonb, ARRAY[300])) AS s(id)});
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 300 FROM job_engine.jobs
 WHERE id >= $first AND handler = 'quick' AND state = 'succeeded'}),
		'listener: 300 jobs succeed while a listener holds a transaction open');
	my $elapsed = time - $t0;
	cmp_ok($elapsed, '<', 30, sprintf('listener: promptly (%.1f s)', $elapsed));
	is(sql("SELECT state FROM pg_stat_activity WHERE pid = $listener_pid"),
		'idle in transaction', 'listener: the listener was still inside its transaction');
	$listener->query_safe('COMMIT');
	$listener->quit;
}

# ---------------------------------------------------------------------------
# h. retry arithmetic at its limit
# ---------------------------------------------------------------------------

# Polls for at most $seconds (the default wait of poll_query_until is far
# longer than this file's budget).
sub poll_within
{
	my ($query, $seconds) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		my $res = eval { sql($query) } // '';
		return 1 if $res eq 't';
		usleep(100_000);
	}
	return 0;
}

{
	sql(q{
CREATE FUNCTION always_fails(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'still failing' USING ERRCODE = '40001';
END
$$;
SELECT job_engine.register_handler('persistent', 'always_fails(jsonb)', queue => 'persist_q',
                                   max_attempts => 100, backoff_base => '10 s', backoff_max => '10 s');
});
	my $supervisor = backend_pid('job_engine supervisor');
	my $job = sql("SELECT job_engine.submit('persistent')");
	ok(poll_within("SELECT state = 'retrying' FROM job_engine.jobs WHERE id = $job", 20),
		'persistent: attempt 1 failed and the job waits to retry');
	# Forty failures, ten seconds apart, later: the job is due again.
	sql(qq{
SELECT job_engine.pause_queue('persist_q');
INSERT INTO job_engine._attempts (job_id, attempt, outcome, finished_at, sqlstate, message)
SELECT $job, g, 'failed', now(), '40001', 'still failing' FROM generate_series(2, 40) g;
UPDATE job_engine._jobs SET attempts = 40, run_at = now() WHERE id = $job;
SELECT job_engine.resume_queue('persist_q');
});
	ok( poll_within(
			"SELECT outcome = 'failed' AND sqlstate = '40001' FROM job_engine.attempts WHERE job_id = $job AND attempt = 41",
			20),
		'persistent: attempt 41 fails and is recorded like the others');
	is( sql(qq{
SELECT state || ' ' || (run_at <= now() + interval '12 s')
  FROM job_engine.jobs WHERE id = $job}),
		'retrying true', 'persistent: the job waits to retry, at most backoff_max (10 s) later');
	is(backend_pid('job_engine supervisor'), $supervisor, 'persistent: the supervisor kept running');
	sql("SELECT job_engine.abort($job, 'enough')");
	my $after = sql("SELECT job_engine.submit('quick', '{\"ms\": 0}')");
	ok(poll_within("SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $after", 20),
		'persistent: other jobs still run');
}

$node->stop;
done_testing();

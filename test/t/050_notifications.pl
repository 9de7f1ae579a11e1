# Notifications on channel job_engine (docs/reference.md, Notifications), seen
# by real LISTEN clients.
#
#  1. A listener receives one JSON payload per transition to retrying,
#     succeeded, failed and aborted, with the documented keys, in order.
#  1b. run_now(), reschedule() and retry() notify the job's new state.
#  2. job_engine.notify = off, set with ALTER SYSTEM and a reload, silences
#     outcomes once the executors have processed the reload.
#  3. A listener that stalls inside an open transaction never holds an
#     outcome back: 200 jobs still succeed promptly, and the listener gets
#     their notifications once it commits.
#  4. What a handler notifies (an abort() of another job) follows its
#     (sub)transaction: a part rolled back by an exception block, or a
#     failed attempt, notifies nothing; the rest arrives before the
#     handler's own outcome.
#
# psql prints 'Asynchronous notification "job_engine" with payload "..."
# received from server process with PID n.' after each command, so the
# listeners are polled with `SELECT 1`, up to a deadline.
use strict;
use warnings;

use JSON::PP;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = JobEngineNode::new_node('notifications', max_workers => 4);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION bad(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bad input' USING ERRCODE = '22023';
END
$$;
-- Fails its first attempt with a serialization failure, then succeeds.
CREATE FUNCTION flaky(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (job_engine.context() ->> 'attempt')::int = 1 THEN
        RAISE EXCEPTION 'try again' USING ERRCODE = '40001';
    END IF;
    RETURN a;
END
$$;
SELECT job_engine.register_handler('n_ok', 'ok(jsonb)', queue => 'nq');
SELECT job_engine.register_handler('n_bad', 'bad(jsonb)', queue => 'nq');
SELECT job_engine.register_handler('n_flaky', 'flaky(jsonb)', queue => 'nq',
                                   backoff_base => '100 ms', backoff_max => '100 ms');
});

my $notification_re =
  qr/^Asynchronous notification "job_engine" with payload "(.*)" received from server process with PID (\d+)\.$/;

# Runs `query` (default `SELECT 1`) in a listening session and returns the
# notifications psql printed after it, each as { raw => payload text,
# json => decoded payload or undef }.
sub drain
{
	my ($session, $query) = @_;
	my @found;
	my $out = $session->query_safe($query // 'SELECT 1');
	for my $line (split /\r?\n/, $out)
	{
		next unless $line =~ $notification_re;
		my $raw = $1;
		my $json = eval { JSON::PP->new->decode($raw) };
		push @found, { raw => $raw, json => $json };
	}
	return @found;
}

# Drains `session` into @$store until $done->() holds or `seconds` pass.
# Returns whether it held.
sub collect_until
{
	my ($session, $store, $done, $seconds) = @_;
	my $deadline = time() + $seconds;
	while (1)
	{
		push @$store, drain($session);
		return 1 if $done->();
		return 0 if time() >= $deadline;
		usleep(50_000);
	}
}

# States notified for a job, in order of arrival.
sub states_of
{
	my ($store, $job) = @_;
	return join ',',
	  map { $_->{json}{state} }
	  grep { defined $_->{json} && ($_->{json}{job_id} // '') eq $job } @$store;
}

my $terminal = qr/(?:^|,)(?:succeeded|failed|aborted)$/;

# Whether @$store holds a 'succeeded' notification for each of @ids.
sub all_succeeded
{
	my ($store, @ids) = @_;
	my %seen = map { ($_->{json}{job_id} => 1) }
	  grep { ref($_->{json}) eq 'HASH' && $_->{json}{state} eq 'succeeded' } @$store;
	return !grep { !$seen{$_} } @ids;
}

###############################################################################
# 1. Every outcome is notified, with the documented payload
###############################################################################

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN job_engine');

my %job;
$job{ok} = $node->safe_psql('postgres', q{SELECT job_engine.submit('n_ok', '{"n": 1}')});
$job{failed} = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('n_bad', '{}', max_attempts => 1)});
$job{retried} = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('n_flaky', '{}', max_attempts => 3)});
$job{aborted} = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('n_ok', '{}', run_at => now() + interval '1 hour')});
# A notification belongs to the transaction that records the transition:
# an abort that rolls back notifies nothing.  Notifications arrive in commit
# order, so one from the rolled-back abort would come before the real one.
is( $node->safe_psql(
		'postgres', qq{BEGIN;
SELECT job_engine.abort($job{aborted}, 'changed my mind');
ROLLBACK;
SELECT state FROM job_engine.jobs WHERE id = $job{aborted};}),
	"t\ncreated",
	'an abort that rolls back leaves the job waiting');
is( $node->safe_psql(
		'postgres', "SELECT job_engine.abort($job{aborted}, 'not needed any more')"),
	't',
	'the waiting job is aborted');

my @notes;
ok( collect_until(
		$listener, \@notes,
		sub {
			!grep { states_of(\@notes, $_) !~ $terminal } values %job;
		},
		$timeout),
	'the listener receives a terminal notification for each of the four jobs');

is(scalar(grep { !defined $_->{json} } @notes), 0, 'every payload is valid JSON')
  or diag explain [ map { $_->{raw} } grep { !defined $_->{json} } @notes ];
is( scalar(grep { ref($_->{json}) ne 'HASH' } grep { defined $_->{json} } @notes),
	0, 'every payload is a JSON object');
my %keysets = map { join(',', sort keys %{ $_->{json} }) => 1 }
  grep { ref($_->{json}) eq 'HASH' } @notes;
is_deeply(
	[ sort keys %keysets ],
	['attempt,correlation_id,handler,job_id,queue,state'],
	'every payload has exactly the keys job_id, state, handler, queue, attempt, correlation_id');

is(states_of(\@notes, $job{ok}), 'succeeded', 'a job that succeeds: succeeded');
is(states_of(\@notes, $job{failed}), 'failed',
	'a job that fails permanently (22023, max_attempts 1): failed');
is(states_of(\@notes, $job{retried}), 'retrying,succeeded',
	'a job that fails once with 40001: retrying, then succeeded');
is(states_of(\@notes, $job{aborted}), 'aborted',
	'a job aborted while waiting: aborted, once (nothing from the rolled-back abort)');

# The fields of each payload match the job.
my %corr = map {
	$_ => $node->safe_psql('postgres',
		"SELECT correlation_id FROM job_engine.jobs WHERE id = $_")
} values %job;
my %expect_attempts = (
	$job{ok} => '1',
	$job{failed} => '1',
	$job{retried} => '1,2',
	$job{aborted} => '0');
my %expect_handler = (
	$job{ok} => 'n_ok',
	$job{failed} => 'n_bad',
	$job{retried} => 'n_flaky',
	$job{aborted} => 'n_ok');
for my $name (sort keys %job)
{
	my $id = $job{$name};
	my @mine = grep { ref($_->{json}) eq 'HASH' && $_->{json}{job_id} eq $id } @notes;
	is(join(',', map { $_->{json}{attempt} } @mine),
		$expect_attempts{$id}, "$name: attempt numbers in the payloads");
	ok(!grep({ $_->{raw} !~ /"job_id"\s*:\s*\d+\s*[,}]/ || $_->{raw} !~ /"attempt"\s*:\s*\d+\s*[,}]/ } @mine),
		"$name: job_id and attempt are JSON numbers");
	ok( !grep({ $_->{json}{handler} ne $expect_handler{$id} || $_->{json}{queue} ne 'nq' } @mine),
		"$name: handler and queue in the payloads");
	ok(!grep({ $_->{json}{correlation_id} ne $corr{$id} } @mine),
		"$name: correlation_id in the payloads is the job's");
}

###############################################################################
# 1b. Acting on a job in place notifies too, with the job's new state
###############################################################################

# reschedule() and run_now() of a waiting job: 'created' each, then its
# outcome; retry() of the failed job: 'retrying', then its second attempt's.
my $delayed = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('n_ok', '{}', run_at => now() + interval '1 hour')});
$node->safe_psql('postgres', "SELECT job_engine.reschedule($delayed, now() + interval '2 hours')");
$node->safe_psql('postgres', "SELECT job_engine.run_now($delayed)");
$node->safe_psql('postgres', "SELECT job_engine.retry($job{failed})");
my @in_place;
ok( collect_until(
		$listener, \@in_place,
		sub {
			states_of(\@in_place, $delayed) =~ $terminal
			  && states_of(\@in_place, $job{failed}) =~ $terminal;
		},
		$timeout),
	'in place: the listener receives the outcomes of the moved and the retried job');
is(states_of(\@in_place, $delayed), 'created,created,succeeded',
	'in place: reschedule and run_now notify the waiting state, then the job succeeds');
is(states_of(\@in_place, $job{failed}), 'retrying,failed',
	'in place: retry notifies retrying, then the second attempt fails');
is( join(',', map { $_->{json}{attempt} }
		  grep { ref($_->{json}) eq 'HASH' && $_->{json}{job_id} eq $job{failed} } @in_place),
	'1,2', 'in place: the retried job keeps its attempt count');

###############################################################################
# 2. job_engine.notify = off
###############################################################################

$node->safe_psql('postgres', 'ALTER SYSTEM SET job_engine.notify = off');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', q{SELECT current_setting('job_engine.notify') = 'off'}),
	'job_engine.notify is off in new sessions after the reload');

# The executors apply the reload when they next look at their latch; until
# then an outcome may still be notified.  Submit jobs one at a time until
# one is recorded without a notification (the absence is checked over a
# short fixed window: the one place a fixed wait is needed).
my $silent_window = 2;
my $deadline = time() + $timeout;
my ($silent, $tries) = (0, 0);
while (!$silent && time() < $deadline)
{
	$tries++;
	my $id = $node->safe_psql('postgres', q{SELECT job_engine.submit('n_ok', '{}')});
	$node->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id")
	  or last;
	my @after;
	collect_until($listener, \@after, sub { states_of(\@after, $id) ne '' }, $silent_window);
	$silent = states_of(\@after, $id) eq '';
}
ok($silent, "with notify off, a job succeeds without a notification (after $tries job(s))");

# The reload reaches every executor: a batch of four jobs, spread over
# them, is silent too.
my $batch = $node->safe_psql('postgres',
	q{SELECT string_agg(id::text, ',') FROM job_engine.submit_many('n_ok', array_fill('{}'::jsonb, ARRAY[4])) id});
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 4 FROM job_engine.jobs WHERE id IN ($batch) AND state = 'succeeded'"),
	'with notify off, a batch of four jobs succeeds');
my @quiet;
collect_until($listener, \@quiet,
	sub { grep { my $id = $_; states_of(\@quiet, $id) ne '' } split /,/, $batch },
	$silent_window);
is(join(';', map { $_->{raw} } grep { ref($_->{json}) eq 'HASH' } @quiet),
	'', 'with notify off, none of them is notified');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET job_engine.notify');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');

# Notifications come back once the executors have reloaded again.
my $back = 0;
$deadline = time() + $timeout;
while (!$back && time() < $deadline)
{
	my $id = $node->safe_psql('postgres', q{SELECT job_engine.submit('n_ok', '{}')});
	my @again;
	$back = collect_until($listener, \@again, sub { states_of(\@again, $id) eq 'succeeded' },
		$silent_window);
}
ok($back, 'with notify back on, outcomes are notified again');

###############################################################################
# 3. A stalled listener never blocks outcomes
###############################################################################

my $stalled = $node->background_psql('postgres');
$stalled->query_safe('LISTEN job_engine');
$stalled->query_safe('BEGIN');
$stalled->query_safe('LISTEN job_engine');
$stalled->query_safe('SELECT 1');

my $started = time();
my $many = $node->safe_psql('postgres',
	q{SELECT string_agg(id::text, ',' ORDER BY id)
        FROM job_engine.submit_many('n_ok', ARRAY(SELECT jsonb_build_object('i', g) FROM generate_series(1, 200) g)) id});
my @many = split /,/, $many;
is(scalar(@many), 200, '200 jobs submitted while a listener stalls in an open transaction');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 200 FROM job_engine.jobs WHERE id IN ($many) AND state = 'succeeded'"),
	'all 200 jobs reach succeeded while the listener stalls');
my $elapsed = time() - $started;
cmp_ok($elapsed, '<', 60, sprintf('... promptly (%.1f s)', $elapsed));
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM job_engine.attempts WHERE job_id IN ($many) AND outcome = 'succeeded'"),
	'200',
	'each of them has its succeeded attempt recorded');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
       WHERE state = 'idle in transaction' AND backend_type = 'client backend'}),
	'1', 'the stalled listener is still idle in its transaction');

my @held = drain($stalled);
is(scalar(@held), 0, 'the stalled listener receives nothing while its transaction is open');

# The free listener got them all meanwhile.
my @free;
ok( collect_until(
		$listener, \@free,
		sub { all_succeeded(\@free, @many) }, $timeout),
	'the other listener receives the 200 succeeded notifications');

# psql prints what arrives right after COMMIT with COMMIT's own output.
my @late = drain($stalled, 'COMMIT');
ok( collect_until(
		$stalled, \@late,
		sub { all_succeeded(\@late, @many) }, $timeout),
	'after COMMIT the stalled listener receives the 200 succeeded notifications too');

$stalled->quit;

###############################################################################
# 4. A handler's notifications follow its (sub)transactions
###############################################################################

$node->safe_psql(
	'postgres', q{
CREATE FUNCTION abort_some(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM job_engine.abort((a ->> 'undone')::bigint, 'rolled back');
        RAISE EXCEPTION 'undo' USING ERRCODE = '22023';
    EXCEPTION WHEN invalid_parameter_value THEN NULL;
    END;
    PERFORM job_engine.abort((a ->> 'kept')::bigint, 'kept');
    IF a ? 'fail' THEN
        RAISE EXCEPTION 'fail' USING ERRCODE = '22023';
    END IF;
    RETURN a;
END
$$;
SELECT job_engine.register_handler('n_abort', 'abort_some(jsonb)', queue => 'nq');
});
my %w = map {
	$_ => $node->safe_psql('postgres',
		q{SELECT job_engine.submit('n_ok', '{}', run_at => now() + interval '1 hour')})
} qw(undone kept undone_f kept_f);
my $x = $node->safe_psql('postgres',
	qq{SELECT job_engine.submit('n_abort', '{"undone": $w{undone}, "kept": $w{kept}}')});
my $y = $node->safe_psql('postgres',
	qq{SELECT job_engine.submit('n_abort', '{"undone": $w{undone_f}, "kept": $w{kept_f}, "fail": true}', max_attempts => 1)});
my @own;
ok( collect_until(
		$listener, \@own,
		sub { states_of(\@own, $x) eq 'succeeded' && states_of(\@own, $y) eq 'failed' },
		$timeout),
	'a handler that aborts other jobs: succeeded, and one that fails after it: failed');
# What a transaction notifies arrives together, before its own outcome: the
# absence of the others is decided now, without waiting.
is(states_of(\@own, $w{kept}), 'aborted', 'the abort the handler kept is notified');
is(join('', map { states_of(\@own, $w{$_}) } qw(undone undone_f kept_f)),
	'', 'the aborts rolled back with an exception block or a failed attempt notify nothing');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(state::text, ',' ORDER BY id) FROM job_engine.jobs WHERE id IN ($w{undone}, $w{kept}, $w{undone_f}, $w{kept_f})"
	),
	'created,aborted,created,created',
	'... and only that job is aborted');

$listener->quit;
$node->stop;
done_testing();

# Notifications on channel job_engine are hints; the truth is the jobs view
# (issue 12, "Also decide and document", decision 2).
#
# NOTIFY is not access-controlled: any role can send a payload on channel
# job_engine, from its own session or, through pg_notify() in a handler,
# from an executor.  A client tells real outcomes apart by this rule,
# written here as client code would apply it (genuine()):
#
#   the notifying backend is a job_engine worker (listed in
#   job_engine.workers, which every role may read; pg_stat_activity hides
#   the backend_type of other roles' backends), or the session that ran the
#   control call (abort, ...), and the job's state in job_engine.jobs is
#   the state the payload names.
#
# bob listens.  alice forges "succeeded" for bob's waiting job from her
# session and from inside her own job's handler; both are rejected.  bob's
# real outcomes (a success recorded by an executor, an abort he called) are
# accepted.
use strict;
use warnings;

use JSON::PP;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node('forged_notify', max_workers => 2);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE alice;
CREATE ROLE bob;
CREATE FUNCTION ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
-- Sends a forged outcome for job a.victim from inside the handler.
CREATE FUNCTION forger(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('job_engine', json_build_object('job_id', (a ->> 'victim')::bigint,
                                                      'state', 'succeeded', 'forged', 'in a handler')::text);
    RETURN a;
END
$$;
SELECT job_engine.register_handler('ok', 'ok(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('forger', 'forger(jsonb)', max_attempts => 1);
});

my $notification_re =
  qr/^Asynchronous notification "job_engine" with payload "(.*)" received from server process with PID (\d+)\.$/;
my @notes;
my $bob = $node->background_psql('postgres');

# Runs SQL in bob's session; keeps the notifications psql printed after it
# in @notes and returns the other output.
sub bob_says
{
	my ($sql) = @_;
	my @rest;
	for my $line (split /\r?\n/, $bob->query_safe($sql))
	{
		if ($line =~ $notification_re)
		{
			push @notes, { raw => $1, pid => $2, json => eval { decode_json($1) } };
		}
		else
		{
			push @rest, $line;
		}
	}
	return join("\n", @rest);
}

bob_says('SET ROLE bob; LISTEN job_engine');
my $bob_pid = bob_says('SELECT pg_backend_pid()');
my $victim = bob_says(q{SELECT job_engine.submit('ok', '{}', run_at => now() + interval '1 day')});

# The rule, as bob's client applies it to one notification.
sub genuine
{
	my ($note, $control_pid) = @_;
	my $p = $note->{json};
	return 0 unless ref $p eq 'HASH' && ($p->{job_id} // '') =~ /^\d+$/ && defined $p->{state};
	my $from_engine = $node->safe_psql(
		'postgres', qq{SET ROLE bob;
SELECT EXISTS (SELECT FROM job_engine.workers WHERE pid = $note->{pid})});
	return 0 unless $from_engine eq 't' || $note->{pid} == $control_pid;
	my $state = $node->safe_psql('postgres',
		"SET ROLE bob; SELECT state FROM job_engine.jobs WHERE id = $p->{job_id}");
	return $state eq $p->{state} ? 1 : 0;
}

# Polls bob's session until a notification about `job` matching `pred`
# arrived (or 15 s passed); returns it.
sub note_about
{
	my ($job, $pred) = @_;
	my $deadline = time + 15;
	while (time < $deadline)
	{
		bob_says('SELECT 1');
		my ($found) = grep {
			ref $_->{json} eq 'HASH' && ($_->{json}{job_id} // '') eq $job && $pred->($_)
		} @notes;
		return $found if $found;
		usleep(100_000);
	}
	return undef;
}

# 1. forged from alice's own session
$node->safe_psql('postgres',
	qq{SET ROLE alice; NOTIFY job_engine, '{"job_id": $victim, "state": "succeeded", "forged": "session"}'});
my $n = note_about($victim, sub { ($_[0]{json}{forged} // '') eq 'session' });
ok($n, 'bob receives the notification alice forged from her session');
ok($n && !genuine($n, $bob_pid), 'the rule rejects it: not sent by a job_engine worker or by the control session');

# 2. forged from inside alice's handler, i.e. from an executor
my $forger = $node->safe_psql('postgres',
	qq{SET ROLE alice; SELECT job_engine.submit('forger', '{"victim": $victim}')});
$n = note_about($victim, sub { ($_[0]{json}{forged} // '') eq 'in a handler' });
ok($n, 'bob receives the notification alice\'s handler forged from an executor');
ok($n && !genuine($n, $bob_pid), 'the rule rejects it: bob\'s job is not in the state it names');
is($node->safe_psql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $victim"),
	'created', 'bob\'s job is in fact still waiting');

# 3. a real outcome recorded by an executor
my $real = bob_says(q{SELECT job_engine.submit('ok', '{}')});
$n = note_about($real, sub { ($_[0]{json}{state} // '') eq 'succeeded' });
ok($n && genuine($n, $bob_pid), 'the rule accepts the real success of bob\'s job');

# 4. a real outcome from the control call bob made
bob_says("SELECT job_engine.abort($victim, 'not needed')");
$n = note_about($victim, sub { ($_[0]{json}{state} // '') eq 'aborted' });
ok($n && $n->{pid} == $bob_pid, 'the abort is notified from the session that called it');
ok($n && genuine($n, $bob_pid), 'the rule accepts it');

$bob->quit;
done_testing();

# A failure line (src/failure_log.c) is written only once the outcome it
# tells of has committed, and once per recorded outcome: a transaction that
# records a failure and then rolls back takes its line with it.
#
# The case: a group (group_commit 3) of job A, whose handler fails, job K,
# whose handler aborts job B, and job B, which succeeds.  The group's
# batched run records A's failure, then finds B no longer running when it
# records the successes (K's abort, in the same transaction, decided it),
# and rolls the whole group back; the group runs again with every outcome
# fenced on its own, and A's failure is recorded a second time, the one
# that commits.  A's line must be in the log once.
#
# A line is written after the commit record, where an error could only end
# in a PANIC: a handler's message of any length makes a line of at most
# JE_LOG_LINE_MAX (8192) bytes, its message cut so that what follows is
# still said; the attempt keeps the whole message.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('failure_log_commit', max_workers => 1);

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION fails(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bad input' USING ERRCODE = '22023';
END
$$;
CREATE FUNCTION aborts_another(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_engine.abort((a ->> 'victim')::bigint, 'not needed');
    RETURN '{}';
END
$$;
CREATE FUNCTION long_message(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', repeat('x', 100000) USING ERRCODE = '22023';
END
$$;
SELECT job_engine.register_handler('long_message', 'long_message(jsonb)'::regprocedure,
                                   max_attempts => 1);
CREATE FUNCTION succeeds(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT job_engine.register_handler('fails', 'fails(jsonb)'::regprocedure,
                                   queue => 'grouped', max_attempts => 1);
SELECT job_engine.register_handler('aborts_another', 'aborts_another(jsonb)'::regprocedure,
                                   queue => 'grouped', max_attempts => 1);
SELECT job_engine.register_handler('succeeds', 'succeeds(jsonb)'::regprocedure,
                                   queue => 'grouped', max_attempts => 1);
SELECT job_engine.configure_queue('grouped', group_commit => 3);
SELECT job_engine.pause_queue('grouped');
});

my $log_offset = -s $node->logfile;
# Claim order is (priority, run_at, id): A, K, then B.
my $b = $node->safe_psql('postgres', q{SELECT job_engine.submit('succeeds', priority => 1)});
my $a = $node->safe_psql('postgres', q{SELECT job_engine.submit('fails')});
my $k = $node->safe_psql('postgres',
	qq{SELECT job_engine.submit('aborts_another', jsonb_build_object('victim', $b))});
$node->safe_psql('postgres', q{SELECT job_engine.resume_queue('grouped')});

ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 3 FROM job_engine.jobs
 WHERE id IN ($a, $b, $k) AND state IN ('succeeded', 'failed', 'aborted')}),
	'the jobs of the group end');

is( $node->safe_psql('postgres', qq{
SELECT string_agg(state::text, ',' ORDER BY id) FROM job_engine.jobs WHERE id IN ($a, $b, $k)}),
	'aborted,failed,succeeded', 'B aborted by K, A failed, K succeeded');
is($node->safe_psql('postgres', "SELECT count(*) FROM job_engine.attempts WHERE job_id = $a"),
	'1', 'A has one attempt on record');

# A's line is written when its outcome commits: wait for it, bounded.
my $line = qr/job_engine: job $a \(handler fails, database "postgres"\) attempt 1 failed: SQLSTATE 22023: bad input; giving up after 1 attempt\(s\)/;
my $log = '';
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	$log = slurp_file($node->logfile, $log_offset);
	last if $log =~ $line;
	select(undef, undef, undef, 0.1);
}
like($log, $line, "A's failure is logged");
my $count = () = $log =~ /job_engine: job $a \(/g;
is($count, 1, "A's failure is logged once, though its group recorded it twice");

# A message of 100,000 characters.
my $l = $node->safe_psql('postgres', q{SELECT job_engine.submit('long_message')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $l"),
	'the job with a long message fails');
is( $node->safe_psql('postgres',
		"SELECT length(message) FROM job_engine.attempts WHERE job_id = $l"),
	'100000', 'its attempt keeps the whole message');
my $long_line = qr/job_engine: job $l \(handler long_message[^\n]*/;
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	$log = slurp_file($node->logfile, $log_offset);
	last if $log =~ $long_line;
	select(undef, undef, undef, 0.1);
}
my ($written) = $log =~ /($long_line)/;
ok(defined $written, 'its failure is logged');
cmp_ok(length($written // ''), '<=', 8192, 'in a line of at most 8192 bytes');
like($written // '', qr/x\.\.\.; giving up after 1 attempt\(s\)/,
	'the message is cut, and the line still says what follows');

done_testing();

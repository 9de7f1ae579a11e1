# ALTER EXTENSION job_engine UPDATE from the previous release
# (docs/upgrading.md).
#
# Database "upgraded" gets the previous release's install script and jobs in
# every waiting kind (a paused queue, a dependency, a later run_at), a
# retried job with a failed attempt, an event, and a job that is running
# when the update starts.  After ALTER EXTENSION job_engine UPDATE its schema
# must be the one a fresh install of the current version makes (database
# "fresh"), and every job must then finish.
#
# The schemas are compared with pg_dump --schema-only.  pg_dump writes no
# member of an extension but the CREATE EXTENSION, so in both databases the
# members are first detached from the extension (ALTER EXTENSION ... DROP,
# after comparing the list of members and the tables pg_dump would dump the
# data of); only the lines \restrict and \unrestrict are normalised away,
# as pg_dump 15.14, 17.6, 18 and later write a random key in them.  Column
# order, defaults, indexes, triggers, privileges and function bodies must
# all be the same.
use strict;
use warnings;

use IPC::Run;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $previous = '1.0';
my $node = JobEngineNode::new_node('main', databases => 'upgraded', max_workers => 2);
my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'job_engine'});

$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('upgraded', "CREATE EXTENSION job_engine VERSION '$previous'");
$node->safe_psql('fresh', 'CREATE EXTENSION job_engine');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'job_engine'}),
	$previous, "installed $previous");

# record() notes each attempt; flaky() fails its first attempt; hold() runs
# until the test releases it.
$node->safe_psql('upgraded', q{
CREATE TABLE effects (job_id bigint, attempt int, handler text);
CREATE TABLE knobs (released boolean NOT NULL);
INSERT INTO knobs VALUES (false);
CREATE FUNCTION record(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int, 'record');
    RETURN a;
END
$$;
CREATE FUNCTION flaky(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    n int := (job_engine.context() ->> 'attempt')::int;
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(), n, 'flaky');
    IF n = 1 THEN
        RAISE EXCEPTION 'first attempt fails';
    END IF;
    RETURN a;
END
$$;
CREATE FUNCTION hold(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(),
                                (job_engine.context() ->> 'attempt')::int, 'hold');
    -- Each statement reads the latest commit (READ COMMITTED).
    WHILE NOT (SELECT released FROM knobs) LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN a;
END
$$;
SELECT job_engine.register_handler('record', 'record(jsonb)');
SELECT job_engine.register_handler('flaky', 'flaky(jsonb)', backoff_base => '10 milliseconds');
SELECT job_engine.register_handler('hold', 'hold(jsonb)', queue => 'holding');
SELECT job_engine.subscribe('order.placed', 'record');
});

# Before the update: a job done, a job retried after a failed attempt, an
# event's job done, and one job running.
my $done = $node->safe_psql('upgraded', q{SELECT job_engine.submit('record', '{"n": 1}')});
my $flaky = $node->safe_psql('upgraded', q{SELECT job_engine.submit('flaky')});
$node->safe_psql('upgraded', q{SELECT job_engine.publish('order.placed', '{"order": 1}')});
my $held = $node->safe_psql('upgraded', q{SELECT job_engine.submit('hold')});
ok( $node->poll_query_until(
		'upgraded', qq{
SELECT count(*) = 3 FROM job_engine.jobs WHERE state = 'succeeded'
   AND (SELECT state FROM job_engine.jobs WHERE id = $held) = 'running'
   AND EXISTS (SELECT FROM job_engine.workers WHERE job_id = $held)}),
	"on $previous: jobs ran, one is running");
is($node->safe_psql('upgraded', qq{SELECT string_agg(outcome::text, ',' ORDER BY attempt)
  FROM job_engine.attempts WHERE job_id = $flaky}),
	'failed,succeeded', 'the flaky job failed once, then succeeded');

# Waiting: a paused queue's jobs, a dependant of the running job and a job
# due later.
my $waiting = $node->safe_psql('upgraded', q{
SELECT job_engine.configure_queue('paused');
SELECT job_engine.pause_queue('paused');
SELECT job_engine.submit('record', '{"n": 2}', queue => 'paused');
SELECT job_engine.submit('record', '{"n": 3}', queue => 'paused');
SELECT job_engine.submit('record', '{"n": 4}', run_at => now() + interval '2 seconds');
} . qq{SELECT job_engine.submit('record', '{"n": 5}', depends_on => ARRAY[$held]::bigint[]);});
my @waiting = split /\n/, $waiting;
splice @waiting, 0, 2;    # the empty lines of configure_queue() and pause_queue()
is(scalar @waiting, 4, 'four waiting jobs');
# And one due in an hour, which the update defers (src/deferred.c).
my $later = $node->safe_psql('upgraded',
	q{SELECT job_engine.submit('record', '{"n": 6}', run_at => now() + interval '1 hour')});

# The update, while the held job runs.  It may wait for the running
# attempt's locks, so it runs in a session of its own and the job is
# released once the update is done or waits on a lock.
my ($update_out, $update_err) = ('', '');
my $update = IPC::Run::start(
	[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('upgraded'),
		'-c', 'ALTER EXTENSION job_engine UPDATE' ],
	'>', \$update_out, '2>', \$update_err);
ok( $node->poll_query_until(
		'upgraded', q{
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'job_engine') <> '} . $previous . q{'
    OR EXISTS (SELECT FROM pg_stat_activity
                WHERE query = 'ALTER EXTENSION job_engine UPDATE' AND wait_event_type = 'Lock')}),
	'the update is done or waits for the running attempt');
is($node->safe_psql('upgraded', "SELECT state FROM job_engine.jobs WHERE id = $held"),
	'running', 'the held job was running during the update');
$node->safe_psql('upgraded', 'UPDATE knobs SET released = true');
ok($update->finish, 'ALTER EXTENSION job_engine UPDATE succeeded') or diag($update_err);
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'job_engine'}),
	$current, "updated to $current");

# A queue 1.0 kept for being paused is a configured one: resumed and
# emptied, it stays.
is($node->safe_psql('upgraded',
		q{SELECT configured_at = created_at FROM job_engine.queues WHERE name = 'paused'}),
	't', "the update counts 1.0's paused queue as configured since its creation");

is($node->safe_psql('upgraded', "SELECT blocked FROM job_engine._jobs WHERE id = $later"),
	't', 'the update defers the waiting job not yet due');

# Work resumes: the running job finishes, the waiting ones run, and so
# does the deferred one, made due now.
$node->safe_psql('upgraded', q{SELECT job_engine.resume_queue('paused')});
$node->safe_psql('upgraded', "SELECT job_engine.reschedule($later, now())");
$node->safe_psql('upgraded', q{SELECT job_engine.publish('order.placed', '{"order": 2}')});
ok( $node->poll_query_until(
		'upgraded', q{
SELECT count(*) FILTER (WHERE state <> 'succeeded') = 0 AND count(*) = 10 FROM job_engine.jobs}),
	'after the update every job succeeded')
  or diag($node->safe_psql('upgraded', 'SELECT id, handler, state, last_error FROM job_engine.jobs'));
is($node->safe_psql('upgraded', qq{SELECT count(*) FROM job_engine.attempts WHERE job_id = $held}),
	'1', 'the running job finished in its one attempt');
is( $node->safe_psql(
		'upgraded',
		'SELECT count(*) FROM job_engine.jobs j WHERE j.id = ANY (ARRAY['
		  . join(',', @waiting)
		  . q{]) AND EXISTS (SELECT FROM effects e WHERE e.job_id = j.id)}),
	'4', 'the waiting jobs ran');

# -- the schema ---------------------------------------------------------------

# What pg_dump cannot see once the members are detached: the members
# themselves and the tables whose data a dump keeps.
my $members = q{
SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'job_engine')
 ORDER BY 1};
my $config = q{
SELECT c::regclass, cond FROM pg_extension e,
       unnest(e.extconfig, e.extcondition) AS x(c, cond)
 WHERE e.extname = 'job_engine' ORDER BY 1::text};
is($node->safe_psql('upgraded', $members), $node->safe_psql('fresh', $members),
	'the same members of the extension');
is($node->safe_psql('upgraded', $config), $node->safe_psql('fresh', $config),
	'the same tables whose data pg_dump keeps');

# Tables and types are detached with their row and array types, which
# PostgreSQL 18 lists as members of their own: those are left out.
my $detach = q{
DO $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT (pg_identify_object(d.classid, d.objid, d.objsubid)).* FROM pg_depend d
              WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'job_engine')
                AND NOT EXISTS (SELECT FROM pg_type t
                                 WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                                   AND (t.typrelid <> 0
                                        OR EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)))
    LOOP
        EXECUTE format('ALTER EXTENSION job_engine DROP %s %s', o.type, o.identity);
    END LOOP;
END
$$;
};
my %dump;
for my $db ('upgraded', 'fresh')
{
	$node->safe_psql($db, $detach);
	my $file = $node->basedir . "/$db.sql";
	$node->command_ok(
		[ 'pg_dump', '--schema-only', '--schema=job_engine', '-f', $file, '-d',
			$node->connstr($db) ],
		"pg_dump --schema-only of $db");
	$dump{$db} = join '', grep { !/^\\(un)?restrict / } split /^/, slurp_file($file);
	open my $fh, '>', "$file.normalised" or die "$file.normalised: $!";
	print $fh $dump{$db};
	close $fh;
}
ok($dump{fresh} =~ /CREATE TABLE job_engine\._jobs/, 'the dump has the tables');
my $same = $dump{upgraded} eq $dump{fresh};
ok($same, "pg_dump --schema-only of $previous updated to $current equals that of a fresh install");
if (!$same)
{
	my $diff = $node->basedir . '/schema.diff';
	system("diff -u " . $node->basedir . "/fresh.sql.normalised " . $node->basedir
		  . "/upgraded.sql.normalised > $diff");
	diag(slurp_file($diff));
}

$node->stop;
done_testing();

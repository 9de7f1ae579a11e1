# A job's timeout also bounds the deferred triggers its handler queued.  In
# an attempt of its own they fire inside the handler's time, before it
# returns (je_close_attempt_xact_state).  In a group they fire for all of
# the group's attempts at its end, as their owner (group_commit.c): there
# too a timeout must bound them, or a slow deferred trigger holds the
# executor, and its jobs running, for as long as it likes.
#   1. an attempt of its own: its deferred trigger is cancelled at the
#      handler's 1 s timeout, and the attempt fails with 57014;
#   2. a group of two such jobs: the deferred triggers are cancelled too,
#      and the group's attempts fail with 57014, within a bound;
#   3. deferred triggers see the owner's ALTER ROLE ... SET settings, in an
#      attempt of its own and in a group alike;
#   4. a group whose deferred trigger catches the cancel of the timeout and
#      returns fails with 57014, as an attempt of its own whose handler
#      catches its timeout does, rather than succeed past its deadline;
#   5. a group whose deferred trigger catches every cancel and goes on is
#      ended by the supervisor (job_engine.abort_grace past the deadline),
#      as a handler that does so is, rather than hold the executor and its
#      jobs running for as long as the trigger likes.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

# One executor: jobs submitted together are claimed by one claim, as one group.
my $node = JobEngineNode::new_node('group_deferred_triggers', max_workers => 1);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

sql(q{
CREATE EXTENSION job_engine;
CREATE ROLE app LOGIN;
CREATE SCHEMA a_s AUTHORIZATION app;
SET ROLE app;
CREATE TABLE a_s.t (x integer);
-- Checked at commit, and far slower than the jobs' timeout.
CREATE FUNCTION a_s.slow_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(600);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON a_s.t
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION a_s.slow_check();
CREATE FUNCTION a_s.put(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    INSERT INTO a_s.t VALUES (1);
    SELECT a
$$;
-- Notes the settings its deferred trigger sees.
CREATE TABLE a_s.noted (x integer);
CREATE TABLE a_s.seen (work_mem text);
CREATE FUNCTION a_s.note_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO a_s.seen VALUES (current_setting('work_mem'));
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER note AFTER INSERT ON a_s.noted
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION a_s.note_settings();
CREATE FUNCTION a_s.note(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    INSERT INTO a_s.noted VALUES (1);
    SELECT a
$$;
-- 4: sleeps past the timeout, catches its cancel and returns; the group's
-- other rows, after it, return at once (the timeout fires only once).
CREATE TABLE a_s.caught (x integer);
CREATE TABLE a_s.once (x integer);
CREATE FUNCTION a_s.catch_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM a_s.caught) THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM pg_sleep(30);
    EXCEPTION WHEN query_canceled THEN
        INSERT INTO a_s.caught VALUES (1);
    END;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER once AFTER INSERT ON a_s.once
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION a_s.catch_once();
-- 5: catches every cancel and goes on, until a row in a_s.stop (at most 5
-- minutes), so that the test ends even when the engine cannot end it.
CREATE TABLE a_s.stop (x integer);
CREATE TABLE a_s.forever (x integer);
CREATE FUNCTION a_s.catch_all() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    WHILE NOT EXISTS (SELECT 1 FROM a_s.stop)
          AND clock_timestamp() < started + interval '5 minutes' LOOP
        BEGIN
            PERFORM pg_sleep(0.1);
        EXCEPTION WHEN query_canceled THEN
            NULL;
        END;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER forever AFTER INSERT ON a_s.forever
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION a_s.catch_all();
-- 4 and 5: a row into the table its arguments name.
CREATE FUNCTION a_s.insert_into(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO a_s.%I VALUES (1)', a ->> 'table');
    RETURN a;
END
$$;
RESET ROLE;
ALTER ROLE app SET work_mem = '7MB';
SELECT job_engine.register_handler('note', 'a_s.note(jsonb)', queue => 'single', max_attempts => 1);
SELECT job_engine.register_handler('note_g', 'a_s.note(jsonb)', queue => 'g', max_attempts => 1);
SELECT job_engine.register_handler('put', 'a_s.put(jsonb)', queue => 'single',
                                   max_attempts => 1, timeout => '1 second');
SELECT job_engine.register_handler('put_g', 'a_s.put(jsonb)', queue => 'g',
                                   max_attempts => 1, timeout => '1 second');
SELECT job_engine.register_handler('insert_g', 'a_s.insert_into(jsonb)', queue => 'g',
                                   max_attempts => 1, timeout => '1 second');
SELECT job_engine.configure_queue('g', group_commit => 2);
});

# "state: attempt outcome sqlstate" of the jobs `ids`, by id.
sub outcomes
{
	my ($ids) = @_;
	return sql(qq{
SELECT string_agg(concat_ws(' ', j.state || ':', a.attempt, a.outcome, a.sqlstate), ' / ' ORDER BY j.id, a.attempt)
  FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
 WHERE j.id IN ($ids)});
}

# Submits two jobs of `handler` with `args` as app while queue g is paused,
# so that one claim takes both; returns their ids as a list for SQL.
sub submit_group
{
	my ($handler, $args) = @_;
	sql(q{SELECT job_engine.pause_queue('g')});
	my @ids = map { sql(qq{SET ROLE app; SELECT job_engine.submit('$handler', '$args')}) } 1 .. 2;
	sql(q{SELECT job_engine.resume_queue('g')});
	return join(',', @ids);
}

# 1. An attempt of its own.
my $single = sql(q{SET ROLE app; SELECT job_engine.submit('put', '{}')});
ok(defined within(30, "SELECT state = 'failed' FROM job_engine.jobs WHERE id = $single"),
	'1: the job whose deferred trigger outlasts its timeout ends within 30 s');
is(outcomes($single), 'failed: 1 failed 57014', '1: its attempt failed with its timeout (57014)');

# 2. A group of two.
my $list = submit_group('put_g', '{}');
ok(defined within(30, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND attempts = 1"),
	'2: both jobs were claimed');
is(sql("SELECT count(DISTINCT worker_pid) FROM job_engine.attempts WHERE job_id IN ($list)"), '1',
	'2: by one executor, as one group');
ok(defined within(30, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state = 'failed'"),
	'2: the jobs of a group whose deferred triggers outlast their timeouts end within 30 s');
is(outcomes($list), 'failed: 1 failed 57014 / failed: 1 failed 57014',
	'2: their attempts failed with the timeout (57014)');
is(sql(q{SELECT count(*) FROM a_s.t}), '0', '2: none of their work is committed');

# 3. Role settings.  The executor's default work_mem is 4MB.
my $alone = sql(q{SET ROLE app; SELECT job_engine.submit('note', '{}')});
ok(defined within(30, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $alone"),
	'3: a job of its own succeeds');
is(sql(q{SELECT string_agg(work_mem, ', ') FROM a_s.seen}), '7MB',
	"3: its deferred trigger saw app's work_mem");
sql(q{TRUNCATE a_s.seen});
$list = submit_group('note_g', '{}');
ok(defined within(30, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state = 'succeeded'"),
	'3: a group of two succeeds');
is(sql("SELECT count(DISTINCT worker_pid) FROM job_engine.attempts WHERE job_id IN ($list)"), '1',
	'3: claimed by one executor, as one group');
is(sql(q{SELECT string_agg(work_mem, ', ') FROM a_s.seen}), '7MB, 7MB',
	"3: the group's deferred triggers saw app's work_mem too");

# 4. A trigger that catches its cancel once and returns.
$list = submit_group('insert_g', '{"table": "once"}');
ok(defined within(60, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state IN ('succeeded', 'failed')"),
	'4: the group ends');
is(sql("SELECT count(DISTINCT worker_pid) FROM job_engine.attempts WHERE job_id IN ($list)"), '1',
	'4: its jobs ran as one group');
is(outcomes($list), 'failed: 1 failed 57014 / failed: 1 failed 57014',
	'4: a deferred trigger that caught the timeout does not make the group succeed past its deadline');
is(sql(q{SELECT count(*) FROM a_s.once}), '0', '4: none of its work is committed');

# 5. A trigger that catches every cancel.  The bound: 1 s of triggers, 5 s
# of abort_grace, the supervisor's check, and room for a slow machine.
$list = submit_group('insert_g', '{"table": "forever"}');
ok(defined within(60, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state = 'failed'"),
	'5: a group whose deferred trigger catches every cancel still ends within 60 s');
sql(q{INSERT INTO a_s.stop VALUES (1)});
ok(defined within(60, "SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($list) AND state IN ('succeeded', 'failed')"),
	'5: the group has ended');
is(sql(q{SELECT count(*) FROM a_s.forever}), '0', '5: none of its work is committed');

done_testing();

# Recording the successes of a group in one statement (src/outcome.c,
# success_sql), where each job finds its result and its attempt by its
# place in the list of recorded ids, and the role settings a group's
# attempts share (src/execution_context.c, read once per transaction):
#   1. with statistics that call _jobs and _attempts empty, recording a
#      success probes both by primary key: no sequential scan of either,
#      counted in pg_stat_xact_all_tables around
#      job_engine_internal._record_success(), the executors' statement;
#   2. one group of 60 jobs mixing first and second attempts, SQL NULL
#      results, JSON null results, results too large to stay inline and
#      plain ones: each job gets its own result, and its own attempt is the
#      one recorded succeeded;
#   3. in a group, each attempt gets the owner's role settings after an
#      attempt before it ran RESET ALL, and despite a setting that cannot
#      be applied (skipped with a WARNING); an ALTER ROLE committed between
#      two groups reaches the second.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

# One executor: jobs submitted together are claimed by one claim, as one group.
my $node = JobEngineNode::new_node('group_success_results', max_workers => 1);

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

sql(q{
CREATE EXTENSION job_engine;
CREATE ROLE app LOGIN;
CREATE SCHEMA w;
GRANT USAGE ON SCHEMA w TO app;
-- The result a job of work() returns, by its args and attempt.
CREATE FUNCTION w.expected(a jsonb, attempt integer) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE a ->> 'kind'
        WHEN 'sql_null' THEN NULL
        WHEN 'json_null' THEN 'null'::jsonb
        WHEN 'large' THEN jsonb_build_object('n', a -> 'n', 'attempt', attempt,
            'pad', (SELECT string_agg(md5((a ->> 'n') || ':' || i), '') FROM generate_series(1, 4000) i))
        ELSE jsonb_build_object('n', a -> 'n', 'attempt', attempt) END
$$;
-- Fails its first attempt when a['fail_once'].
CREATE FUNCTION w.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    attempt integer := (job_engine.context() ->> 'attempt')::integer;
BEGIN
    IF (a ->> 'fail_once')::boolean AND attempt = 1 THEN
        RAISE EXCEPTION 'first attempt of job % fails', a ->> 'n';
    END IF;
    RETURN w.expected(a, attempt);
END
$$;
SELECT job_engine.register_handler('work', 'w.work(jsonb)', queue => 'g', max_attempts => 2,
                                   backoff_base => '8 seconds', backoff_max => '8 seconds');
SELECT job_engine.configure_queue('g', group_commit => 64);

-- Settings as an attempt sees them; reset() first runs RESET ALL.
CREATE FUNCTION w.probe(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (a ->> 'reset')::boolean THEN
        RESET ALL;
    END IF;
    RETURN jsonb_build_object('work_mem', current_setting('work_mem'),
                              'search_path', current_setting('search_path'));
END
$$;
SELECT job_engine.register_handler('probe', 'w.probe(jsonb)', queue => 's', max_attempts => 1);
SELECT job_engine.configure_queue('s', group_commit => 8);
});

# ===========================================================================
# 1. the statement's plan with statistics that call the tables empty
# ===========================================================================
sql('VACUUM ANALYZE job_engine._jobs, job_engine._attempts');
is(sql(q{SELECT string_agg(relname || ' ' || reltuples, ', ' ORDER BY relname) FROM pg_class
          WHERE oid IN ('job_engine._jobs'::regclass, 'job_engine._attempts'::regclass)}),
	'_attempts 0, _jobs 0', '1: the statistics call both tables empty');
# A session of its own, whose first recording plans the statement: the job
# submitted, claimed and recorded in one transaction, rolled back.
my $scans = sql(q{
CREATE FUNCTION pg_temp.seq_scans(rel regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT seq_scan FROM pg_stat_xact_all_tables WHERE relid = rel
$$;
BEGIN;
SET LOCAL ROLE app;
SELECT job_engine.submit('work', '{"n": 0}') IS NOT NULL AS submitted \gset
RESET ROLE;
SELECT job_id, attempt FROM job_engine_internal._claim(pg_backend_pid()) \gset
SELECT pg_temp.seq_scans('job_engine._jobs') AS jobs0, pg_temp.seq_scans('job_engine._attempts') AS attempts0 \gset
SELECT job_engine_internal._record_success(:job_id, :attempt, '{"r": 1}') AS recorded \gset
SELECT :'recorded' || ' ' || (pg_temp.seq_scans('job_engine._jobs') - :jobs0) || ' '
       || (pg_temp.seq_scans('job_engine._attempts') - :attempts0);
ROLLBACK;
});
is($scans, 't 0 0',
	'1: the success is recorded without a sequential scan of _jobs or _attempts (recorded, scans of each)');

# ===========================================================================
# 2. one group mixing attempts and kinds of result
# ===========================================================================
# 20 jobs fail their first attempt, in one group; they wait out their 8 s
# backoff while the queue is paused and 40 fresh jobs join them.
sql(q{SET ROLE app; SELECT count(job_engine.submit('work', jsonb_build_object(
          'n', i, 'kind', (ARRAY['plain', 'sql_null', 'json_null', 'large'])[1 + i % 4], 'fail_once', true)))
        FROM generate_series(1, 20) i});
ok(defined within(60, q{SELECT count(*) = 20 FROM job_engine.jobs WHERE handler = 'work' AND state = 'retrying'}),
	'2: the 20 first attempts fail, their jobs wait to retry');
sql(q{SELECT job_engine.pause_queue('g')});
is(sql(q{SELECT count(*) FROM job_engine.jobs WHERE handler = 'work' AND state = 'retrying'}), '20',
	'2: the queue is paused before the retries come due');
sql(q{SET ROLE app; SELECT count(job_engine.submit('work', jsonb_build_object(
          'n', i, 'kind', (ARRAY['plain', 'sql_null', 'json_null', 'large'])[1 + i % 4], 'fail_once', false)))
        FROM generate_series(21, 60) i});
# Due, and released from the deferred jobs by the idle executor: candidates
# for the claim that the resume wakes it for.
ok(defined within(60, q{SELECT count(*) = 20 FROM job_engine._jobs
                         WHERE handler = 'work' AND state = 'retrying' AND run_at <= now() AND blocked IS NULL}),
	'2: the retries are due, and candidates');
sql(q{SELECT job_engine.resume_queue('g')});
ok(defined within(120, q{SELECT count(*) = 60 FROM job_engine.jobs
                          WHERE handler = 'work' AND state IN ('succeeded', 'failed', 'aborted')}),
	'2: the 60 jobs finish');
is(sql(q{SELECT count(*) FROM (SELECT 1 FROM job_engine._jobs WHERE handler = 'work' AND state = 'succeeded'
                                GROUP BY xmin::text HAVING count(DISTINCT attempts) > 1) t}), '1',
	'2: one transaction recorded the successes of first and second attempts together');
is(sql(q{SELECT count(*) FROM job_engine.jobs WHERE handler = 'work' AND state = 'succeeded'
           AND attempts = CASE WHEN (args ->> 'fail_once')::boolean THEN 2 ELSE 1 END}), '60',
	'2: every job succeeded, at its own attempt');
is(sql(q{SELECT string_agg(format('%s %s: %s', j.args ->> 'n', j.args ->> 'kind',
                                  COALESCE(left(j.result::text, 40), 'NULL')), '; ' ORDER BY j.id)
           FROM job_engine.jobs j
          WHERE j.handler = 'work' AND j.result IS DISTINCT FROM w.expected(j.args, j.attempts)}), '',
	'2: each job got its own result (SQL NULL, JSON null, large and plain alike)');
is(sql(q{SELECT count(*) FROM job_engine.jobs WHERE handler = 'work' AND args ->> 'kind' = 'large'
           AND octet_length(result ->> 'pad') = 128000}), '15',
	'2: the 15 large results (128 kB, stored out of line) are whole');
is(sql(q{SELECT string_agg(j.id || ': ' || h.history, '; ' ORDER BY j.id)
           FROM job_engine.jobs j,
                LATERAL (SELECT string_agg(a.attempt || ' ' || a.outcome, ', ' ORDER BY a.attempt) AS history
                           FROM job_engine.attempts a WHERE a.job_id = j.id) h
          WHERE j.handler = 'work'
            AND h.history IS DISTINCT FROM CASE WHEN (j.args ->> 'fail_once')::boolean
                                                THEN '1 failed, 2 succeeded' ELSE '1 succeeded' END}), '',
	"2: each job's own attempt is the one recorded succeeded, the failed first attempts stay failed");

# ===========================================================================
# 3. role settings shared by a group's attempts
# ===========================================================================
# default_tablespace names no tablespace: ALTER ROLE stores it (with a
# NOTICE), and each attempt skips it with a WARNING.
sql(q{ALTER ROLE app SET default_tablespace = 'no_such_tablespace';
      ALTER ROLE app SET work_mem = '7MB';
      ALTER ROLE app SET search_path = w, public;});

# Submits the jobs of probe with these args to the paused queue s, as app,
# resumes it and waits for them: one claim, one group.  Returns their ids.
sub probe_group
{
	my @args = @_;
	sql(q{SELECT job_engine.pause_queue('s')});
	my @ids = map { sql("SET ROLE app; SELECT job_engine.submit('probe', '$_')") } @args;
	sql(q{SELECT job_engine.resume_queue('s')});
	my $list = join(',', @ids);
	ok(defined within(60, "SELECT count(*) = " . scalar(@ids) . " FROM job_engine.jobs
	                        WHERE id IN ($list) AND state IN ('succeeded', 'failed', 'aborted')"),
		"3: jobs $list finish");
	return @ids;
}

sub seen
{
	my ($id) = @_;
	return sql("SELECT CASE WHEN result IS NULL THEN state::text
	                        ELSE (result ->> 'work_mem') || ' | ' || (result ->> 'search_path') END
	              FROM job_engine.jobs WHERE id = $id");
}

my @g1 = probe_group('{}', '{"reset": true}', '{}', '{}');
is(sql("SELECT count(DISTINCT xmin::text) FROM job_engine._jobs WHERE id IN (" . join(',', @g1) . ")"), '1',
	'3: the four jobs were recorded in one transaction');
is(join(' / ', map { seen($_) } @g1),
	'7MB | w, public / 4MB | "$user", public / 7MB | w, public / 7MB | w, public',
	"3: each attempt of the group gets app's settings, after one that ran RESET ALL, despite the one that cannot be applied");

sql(q{ALTER ROLE app SET work_mem = '5MB'});
my @g2 = probe_group('{}', '{}');
is(join(' / ', map { seen($_) } @g2), '5MB | w, public / 5MB | w, public',
	'3: an ALTER ROLE committed between two groups reaches the second');

done_testing();

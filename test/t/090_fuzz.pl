# Random calls to the whole SQL API with hostile argument values.
#
# A procedure makes $ncalls calls, each to a function of the API chosen at
# random (weighted), with each argument drawn from a pool of awkward values:
# NULL, '', blanks, a tab, negative, zero and extreme integers, infinite and
# extreme timestamps, huge intervals, 1 MB strings and documents, a
# 100,000-element jsonb[] for submit_many, names with quotes and SQL
# injection, ids of existing and missing jobs, wrong function signatures.
# A third of the calls run as a role without special privileges.  Each call
# runs in a subtransaction that records its SQLSTATE; every tenth call the
# procedure commits, so the executors work on the jobs meanwhile.  A few
# directed calls follow: values left out of the pools because a wrong answer
# to them (a handler naming no function) would stop the rest of the run.
#
# Afterwards: no internal error (class XX) and no error that would mean a
# bug in the extension's own SQL (42601 syntax, 42703/42702 column, 42P01
# relation, 42725 ambiguous function, 42P18 indeterminate type) ever; the
# server never restarted and its workers still serve; and once every queue
# is paused and the executors are idle, the tables are consistent.
#
# The random sequence is seeded (setseed); the seed is printed.  Rerun with
# JE_FUZZ_SEED=<seed> to draw the same calls (job ids picked from the table
# may still differ, since they depend on what the executors did meanwhile).
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $ncalls = 3000;
my $seed = $ENV{JE_FUZZ_SEED} // sprintf('%.6f', rand(2) - 1);
die "JE_FUZZ_SEED must be a number between -1 and 1\n"
  unless $seed =~ /^-?\d*\.?\d+$/ && abs($seed) <= 1;
note "fuzz seed: $seed (rerun with JE_FUZZ_SEED=$seed)";

my $node = JobEngineNode::new_node(
	'fuzz',
	pg_cron => 1,
	max_workers => 2,
	extra_conf => q{
job_engine.log_failures = off
# Should a backend crash, the server must come back for the checks below.
restart_after_crash = on
});

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE EXTENSION pg_cron;
CREATE SCHEMA fuzz;
CREATE ROLE fuzz_user;
GRANT USAGE ON SCHEMA fuzz TO fuzz_user;
GRANT EXECUTE ON FUNCTION job_engine.register_handler, job_engine.unregister_handler,
      job_engine.pause_queue, job_engine.resume_queue, job_engine.configure_queue,
      job_engine.subscribe, job_engine.unsubscribe TO fuzz_user;
GRANT USAGE ON SCHEMA cron TO fuzz_user;
-- Must survive every name that carries an injection attempt.
CREATE TABLE fuzz.victim (x int);
CREATE TABLE fuzz.calls (i int, fn text, as_user boolean, sqlstate text, message text, stmt text,
                         ms float8);

-- Handlers, and functions that are not fit to be handlers.
CREATE FUNCTION fuzz.h_ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION fuzz.h_fail(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'fuzz failure' USING ERRCODE = '40001'; END $$;
CREATE FUNCTION fuzz.h_sleep(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$;
CREATE FUNCTION fuzz.h_child(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_engine.submit('fuzz_h1', a);
    PERFORM job_engine.publish('fuzz.child', a);
    RETURN job_engine.context();
END
$$;
CREATE FUNCTION fuzz.h_self_abort(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM job_engine.abort(job_engine.current_job_id(), 'self');
    PERFORM pg_sleep(0.02);
    RETURN '{}';
END
$$;
CREATE FUNCTION fuzz.h_text(a jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'text result' $$;
CREATE FUNCTION fuzz.h_void(a jsonb) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE FUNCTION fuzz.h_big(a jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT jsonb_build_object('big', repeat('x', 1048576)) $$;
CREATE FUNCTION fuzz.not_jsonb(a integer) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION fuzz.two_args(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION fuzz.setof(a jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE PROCEDURE fuzz.proc(a jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE AGGREGATE fuzz.agg(jsonb) (SFUNC = jsonb_concat, STYPE = jsonb);
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA fuzz TO PUBLIC;
SELECT job_engine.register_handler('fuzz_h1', 'fuzz.h_ok(jsonb)', queue => 'fuzz_q1');
SELECT job_engine.register_handler('fuzz_h2', 'fuzz.h_fail(jsonb)', backoff_base => '10 ms',
                                   backoff_max => '50 ms');
SELECT job_engine.register_handler('fuzz_h3', 'fuzz.h_child(jsonb)', queue => 'fuzz_q2');

-- Argument pools.  Every draw goes through random(), seeded by the procedure.
CREATE FUNCTION fuzz.r(n integer) RETURNS integer LANGUAGE sql
AS $$ SELECT floor(random() * n)::integer $$;
CREATE FUNCTION fuzz.opt(s text) RETURNS text LANGUAGE sql
AS $$ SELECT CASE WHEN random() < 0.7 THEN s ELSE '' END $$;

-- Names: half are kind || 1..3, the names of the objects the fuzz works on.
CREATE FUNCTION fuzz.name(kind text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r integer := fuzz.r(22);
BEGIN
    RETURN CASE r
        WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN '   ' WHEN 3 THEN E'\t'
        WHEN 4 THEN repeat('x', 1048576)
        WHEN 5 THEN $q$it's "quoted"$q$
        WHEN 6 THEN $q$'); DROP TABLE fuzz.victim; --$q$
        WHEN 7 THEN repeat('n', 201)
        WHEN 8 THEN 'ünïcödé ✓'
        WHEN 9 THEN 'nope'
        WHEN 10 THEN E'back\\slash %s %I'
        ELSE kind || (r % 3 + 1)::text
    END;
END
$$;
CREATE FUNCTION fuzz.event_type() RETURNS text LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, '', '   ', 'fuzz.a', 'fuzz.b', 'fuzz.*', '*', 'a*b', '**', 'fuzz.child',
                  repeat('e', 1048576), $q$x'); DROP TABLE fuzz.victim; --$q$, 'fuzz.a',
                  'fuzz.*'])[1 + fuzz.r(14)]
$$;
CREATE FUNCTION fuzz.int() RETURNS integer LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, 0, -1, 1, 2, 3, 5, 64, 65, -2147483648, 2147483647])[1 + fuzz.r(11)]
$$;
CREATE FUNCTION fuzz.ival() RETURNS interval LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, '0', '-1 second', '1 microsecond', '1 millisecond', '10 milliseconds',
                  '1 second', '1 hour', '1 mon', '100 years', '101 years', '178000000 years',
                  '-178000000 years']::interval[])[1 + fuzz.r(13)]
$$;
CREATE FUNCTION fuzz.short_ival() RETURNS interval LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, '0', '-1 second', '1 millisecond', '10 milliseconds',
                  '101 years']::interval[])[1 + fuzz.r(6)]
$$;
CREATE FUNCTION fuzz.ts() RETURNS timestamptz LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, 'infinity', '-infinity', now(), now() + interval '1 day',
                  now() - interval '1 day', '4714-11-24 00:00:00+00 BC', '294276-12-31 23:59:59+00',
                  '2000-01-01']::timestamptz[])[1 + fuzz.r(9)]
$$;
CREATE FUNCTION fuzz.doc() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r integer := fuzz.r(10);
BEGIN
    RETURN CASE r
        WHEN 0 THEN NULL WHEN 1 THEN '{}' WHEN 2 THEN '[]' WHEN 3 THEN 'null'
        WHEN 4 THEN '1' WHEN 5 THEN '"s"' WHEN 6 THEN '{"ms": 5, "n": [1, 2, 3]}'
        WHEN 7 THEN jsonb_build_object('big', repeat('x', 1048576))
        WHEN 8 THEN (repeat('[', 1000) || repeat(']', 1000))::jsonb
        ELSE jsonb_build_object($q$'); DROP TABLE fuzz.victim; --$q$, 'v')
    END;
END
$$;
CREATE FUNCTION fuzz.docs(allow_big boolean) RETURNS jsonb[] LANGUAGE plpgsql AS $$
DECLARE r integer := fuzz.r(9);
BEGIN
    RETURN CASE r
        WHEN 0 THEN NULL
        WHEN 1 THEN '{}'::jsonb[]
        WHEN 2 THEN ARRAY[NULL]::jsonb[]
        WHEN 3 THEN ARRAY['{}', '{"n": 2}']::jsonb[]
        WHEN 4 THEN ARRAY[['{}'], ['{}']]::jsonb[]
        WHEN 5 THEN ARRAY['{}', NULL]::jsonb[]
        WHEN 6 THEN ARRAY[jsonb_build_object('big', repeat('x', 1048576))]
        WHEN 7 THEN CASE WHEN allow_big THEN array_fill('{}'::jsonb, ARRAY[100000])
                         ELSE ARRAY['{}']::jsonb[] END
        ELSE ARRAY[fuzz.doc()]
    END;
END
$$;
CREATE FUNCTION fuzz.codes() RETURNS text[] LANGUAGE sql AS $$
    SELECT CASE fuzz.r(9)
        WHEN 0 THEN NULL WHEN 1 THEN '{}'::text[] WHEN 2 THEN ARRAY[NULL]::text[]
        WHEN 3 THEN ARRAY['40001'] WHEN 4 THEN ARRAY['08', '57014'] WHEN 5 THEN ARRAY['4000']
        WHEN 6 THEN ARRAY['ab'] WHEN 7 THEN ARRAY[['40', '41']]
        ELSE ARRAY[repeat('4', 1048576)] END
$$;
CREATE FUNCTION fuzz.job_id() RETURNS bigint LANGUAGE sql AS $$
    SELECT CASE fuzz.r(10)
        WHEN 0 THEN NULL WHEN 1 THEN 0 WHEN 2 THEN -1
        WHEN 3 THEN 9223372036854775807 WHEN 4 THEN -9223372036854775808
        WHEN 5 THEN (SELECT coalesce(max(id), 0) + 1000 FROM job_engine._jobs)
        ELSE (SELECT min(id) FROM job_engine._jobs
               WHERE id >= floor(random() * (SELECT coalesce(max(id), 0) + 1 FROM job_engine._jobs)))
    END
$$;
CREATE FUNCTION fuzz.job_ids() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT CASE fuzz.r(8)
        WHEN 0 THEN NULL WHEN 7 THEN NULL WHEN 1 THEN '{}'::bigint[] WHEN 2 THEN ARRAY[NULL]::bigint[]
        WHEN 3 THEN ARRAY[fuzz.job_id()] WHEN 4 THEN ARRAY[fuzz.job_id(), fuzz.job_id()]
        WHEN 5 THEN ARRAY[[1, 2], [3, 4]]::bigint[] ELSE ARRAY[-1]::bigint[] END
$$;
CREATE FUNCTION fuzz.sub_id() RETURNS bigint LANGUAGE sql AS $$
    SELECT CASE fuzz.r(6)
        WHEN 0 THEN NULL WHEN 1 THEN 0 WHEN 2 THEN 9223372036854775807
        ELSE (SELECT min(id) FROM job_engine.subscriptions
               WHERE id >= floor(random() * (SELECT coalesce(max(id), 0) + 2 FROM job_engine.subscriptions)))
    END
$$;
CREATE FUNCTION fuzz.corr() RETURNS uuid LANGUAGE sql AS $$
    SELECT CASE fuzz.r(4)
        WHEN 0 THEN NULL WHEN 1 THEN gen_random_uuid()
        WHEN 2 THEN '00000000-0000-0000-0000-000000000000'::uuid
        ELSE (SELECT correlation_id FROM job_engine._jobs
               WHERE id >= floor(random() * (SELECT coalesce(max(id), 0) + 1 FROM job_engine._jobs))
               ORDER BY id LIMIT 1)
    END
$$;
CREATE FUNCTION fuzz.fn() RETURNS regprocedure LANGUAGE plpgsql AS $$
BEGIN
    RETURN (ARRAY[NULL, 'fuzz.h_ok(jsonb)', 'fuzz.h_fail(jsonb)', 'fuzz.h_sleep(jsonb)',
                  'fuzz.h_child(jsonb)', 'fuzz.h_self_abort(jsonb)', 'fuzz.h_text(jsonb)',
                  'fuzz.h_void(jsonb)', 'fuzz.h_big(jsonb)', 'fuzz.not_jsonb(integer)',
                  'fuzz.two_args(jsonb,jsonb)', 'fuzz.setof(jsonb)', 'fuzz.proc(jsonb)',
                  'fuzz.agg(jsonb)', 'pg_catalog.jsonb_pretty(jsonb)']
           )[1 + fuzz.r(15)]::regprocedure;
END
$$;
CREATE FUNCTION fuzz.library() RETURNS text LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, '', '   ', '$libdir/job_engine_example', '$libdir/job_engine_example',
                  '$libdir/nonexistent', '$libdir/job_engine', '$libdir/plpgsql',
                  '/nonexistent/x.so', $q$'); DROP TABLE fuzz.victim; --$q$])[1 + fuzz.r(10)]
$$;
CREATE FUNCTION fuzz.symbol() RETURNS text LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, '', 'hello_handler', 'flaky_handler', 'busy_handler', 'nope',
                  'job_engine_gate', repeat('s', 1048576)])[1 + fuzz.r(8)]
$$;
CREATE FUNCTION fuzz.cron() RETURNS text LANGUAGE sql AS $$
    SELECT (ARRAY[NULL, '', '* * * * *', '1 seconds', '30 seconds', 'bogus', '@hourly',
                  '61 * * * *', '0 0 31 2 *', repeat('*', 1048576),
                  $q$'); DROP TABLE fuzz.victim; --$q$])[1 + fuzz.r(11)]
$$;

-- Runs one directed call, recorded like the random ones (i = 0).
CREATE FUNCTION fuzz.try(label text, stmt text, as_user boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text := '00000';
    msg text;
BEGIN
    BEGIN
        IF as_user THEN
            SET LOCAL ROLE fuzz_user;
        END IF;
        EXECUTE stmt;
        RESET ROLE;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    INSERT INTO fuzz.calls VALUES (0, label, as_user, st, left(msg, 300), stmt, NULL);
    RETURN st;
END
$$;

CREATE PROCEDURE fuzz.run(n integer, seed double precision)
LANGUAGE plpgsql AS $$
DECLARE
    -- Functions of the API, repeated by weight.
    fns text[] := ARRAY[
        'register_handler', 'register_handler', 'register_handler',
        'register_c_handler', 'unregister_handler', 'unregister_handler',
        'submit', 'submit', 'submit', 'submit', 'submit', 'submit', 'submit', 'submit',
        'submit_many', 'submit_many', 'submit_many',
        'subscribe', 'subscribe', 'unsubscribe', 'unsubscribe',
        'publish', 'publish', 'publish', 'publish',
        'abort', 'abort', 'abort', 'abort', 'abort',
        'resubmit', 'resubmit', 'resubmit', 'wait', 'wait',
        'pause_queue', 'resume_queue', 'resume_queue', 'configure_queue', 'configure_queue',
        'schedule', 'unschedule', 'purge', 'observe', 'context'];
    fn text;
    stmt text;
    st text;
    msg text;
    as_user boolean;
    big_left integer := 1;
    t1 text; t2 text; t3 text; t4 text; t5 text; t6 text;
    i1 integer; i2 integer;
    iv1 interval; iv2 interval; iv3 interval;
    ts1 timestamptz;
    j1 jsonb;
    ja1 jsonb[];
    ta1 text[];
    b1 bigint;
    ba1 bigint[];
    u1 uuid;
    f1 regprocedure;
    started timestamptz;
BEGIN
    PERFORM setseed(seed);
    FOR i IN 1 .. n LOOP
        fn := fns[1 + fuzz.r(cardinality(fns))];
        as_user := random() < 0.33;
        t1 := NULL; t2 := NULL; t3 := NULL; t4 := NULL; t5 := NULL; t6 := NULL;
        i1 := NULL; i2 := NULL; iv1 := NULL; iv2 := NULL; iv3 := NULL; ts1 := NULL;
        j1 := NULL; ja1 := NULL; ta1 := NULL; b1 := NULL; ba1 := NULL; u1 := NULL; f1 := NULL;
        -- $1..$6 text, $7 $8 integer, $9..$11 interval, $12 timestamptz,
        -- $13 jsonb, $14 jsonb[], $15 text[], $16 bigint, $17 bigint[],
        -- $18 uuid, $19 regprocedure
        CASE fn
        WHEN 'register_handler', 'register_c_handler' THEN
            t1 := fuzz.name('fuzz_h'); t2 := fuzz.name('fuzz_q'); t3 := fuzz.name('fuzz_h');
            t4 := fuzz.library(); t5 := fuzz.symbol(); f1 := fuzz.fn();
            i1 := fuzz.int(); iv1 := fuzz.ival(); iv2 := fuzz.ival(); iv3 := fuzz.ival();
            ta1 := fuzz.codes();
            stmt := CASE WHEN fn = 'register_handler'
                         THEN 'SELECT job_engine.register_handler(name => $1, fn => $19'
                         ELSE 'SELECT job_engine.register_c_handler(name => $1, library => $4, symbol => $5' END
                 || fuzz.opt(', queue => $2') || fuzz.opt(', max_attempts => $7')
                 || fuzz.opt(', backoff_base => $9') || fuzz.opt(', backoff_max => $10')
                 || fuzz.opt(', timeout => $11') || fuzz.opt(', retry_on => $15')
                 || CASE WHEN random() < 0.2 THEN ', compensate_with => $3' ELSE '' END || ')';
        WHEN 'unregister_handler' THEN
            t1 := fuzz.name('fuzz_h');
            stmt := 'SELECT job_engine.unregister_handler($1)';
        WHEN 'submit' THEN
            t1 := fuzz.name('fuzz_h'); j1 := fuzz.doc(); t2 := fuzz.name('fuzz_q');
            i1 := fuzz.int(); ts1 := fuzz.ts(); i2 := fuzz.int(); t3 := fuzz.name('key');
            u1 := fuzz.corr(); ba1 := fuzz.job_ids(); t4 := fuzz.name('order');
            stmt := 'SELECT job_engine.submit(handler => $1' || fuzz.opt(', args => $13')
                 || fuzz.opt(', queue => $2') || fuzz.opt(', priority => $7')
                 || fuzz.opt(', run_at => $12') || fuzz.opt(', max_attempts => $8')
                 || fuzz.opt(', idempotency_key => $3') || fuzz.opt(', correlation_id => $18')
                 || fuzz.opt(', depends_on => $17') || fuzz.opt(', ordering_key => $4') || ')';
        WHEN 'submit_many' THEN
            t1 := fuzz.name('fuzz_h'); ja1 := fuzz.docs(big_left > 0); t2 := fuzz.name('fuzz_q');
            i1 := fuzz.int(); ts1 := fuzz.ts();
            IF cardinality(ja1) = 100000 THEN
                big_left := big_left - 1;
            END IF;
            stmt := 'SELECT count(*) FROM job_engine.submit_many(handler => $1, args => $14'
                 || fuzz.opt(', queue => $2') || fuzz.opt(', priority => $7')
                 || fuzz.opt(', run_at => $12') || ')';
        WHEN 'subscribe' THEN
            t1 := fuzz.event_type(); t2 := fuzz.name('fuzz_h');
            stmt := 'SELECT job_engine.subscribe($1, $2)';
        WHEN 'unsubscribe' THEN
            b1 := fuzz.sub_id();
            stmt := 'SELECT job_engine.unsubscribe($16)';
        WHEN 'publish' THEN
            t1 := fuzz.event_type(); j1 := fuzz.doc(); u1 := fuzz.corr();
            stmt := 'SELECT job_engine.publish(event_type => $1' || fuzz.opt(', payload => $13')
                 || fuzz.opt(', correlation_id => $18') || ')';
        WHEN 'abort' THEN
            b1 := fuzz.job_id(); t1 := fuzz.name('reason');
            stmt := 'SELECT job_engine.abort($16, $1)';
        WHEN 'resubmit' THEN
            b1 := fuzz.job_id();
            stmt := 'SELECT job_engine.resubmit($16)';
        WHEN 'wait' THEN
            b1 := fuzz.job_id(); iv1 := fuzz.short_ival();
            stmt := 'SELECT job_engine.wait($16, $9)';
        WHEN 'pause_queue', 'resume_queue' THEN
            t1 := fuzz.name('fuzz_q');
            stmt := 'SELECT job_engine.' || fn || '($1)';
        WHEN 'configure_queue' THEN
            t1 := fuzz.name('fuzz_q'); i1 := fuzz.int(); i2 := fuzz.int();
            stmt := 'SELECT job_engine.configure_queue(queue => $1' || fuzz.opt(', concurrency => $7')
                 || fuzz.opt(', group_commit => $8') || ')';
        WHEN 'schedule' THEN
            t1 := fuzz.name('fuzz_s'); t2 := fuzz.cron(); t3 := fuzz.name('fuzz_h'); j1 := fuzz.doc();
            stmt := 'SELECT job_engine.schedule(schedule_name => $1, cron => $2, handler => $3'
                 || fuzz.opt(', args => $13') || ')';
        WHEN 'unschedule' THEN
            t1 := fuzz.name('fuzz_s');
            stmt := 'SELECT job_engine.unschedule($1)';
        WHEN 'purge' THEN
            iv1 := CASE WHEN random() < 0.3 THEN interval '1 hour' ELSE fuzz.ival() END;
            stmt := 'SELECT job_engine.purge($9)';
        WHEN 'observe' THEN
            -- Reading costs grow with the jobs retained: one slot for all.
            u1 := fuzz.corr();
            stmt := (ARRAY['SELECT count(*) FROM job_engine.trace($18)',
                           'SELECT length(job_engine.metrics())',
                           'SELECT (SELECT count(*) FROM job_engine.jobs) + (SELECT count(*) FROM job_engine.attempts)'
                           || ' + (SELECT count(*) FROM job_engine.events) + (SELECT count(*) FROM job_engine.queue_stats)'
                           || ' + (SELECT count(*) FROM job_engine.workers)'])[1 + fuzz.r(3)];
        ELSE
            stmt := 'SELECT job_engine.context(), job_engine.current_job_id()';
        END CASE;

        started := clock_timestamp();
        BEGIN
            IF as_user THEN
                SET LOCAL ROLE fuzz_user;
            END IF;
            EXECUTE stmt USING t1, t2, t3, t4, t5, t6, i1, i2, iv1, iv2, iv3, ts1, j1, ja1, ta1,
                               b1, ba1, u1, f1;
            RESET ROLE;
            st := '00000';
            msg := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        END;
        INSERT INTO fuzz.calls
        VALUES (i, fn, as_user, st, left(msg, 300), stmt,
                extract(epoch FROM clock_timestamp() - started) * 1000);
        IF i % 10 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$$;
});

my $supervisor = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'");
my $log_offset = -s $node->logfile;

# Lines of the server log that tell of a backend crash since $log_offset.
sub crashes
{
	my $log = slurp_file($node->logfile, $log_offset);
	return join("\n",
		grep { /terminated by signal|Failed process was running|all server processes terminated/ }
		  split /\n/, $log);
}

my $t0 = time;
my ($rc, $out, $err) = (0, '', '');
$rc = $node->psql('postgres', "CALL fuzz.run($ncalls, $seed)", stdout => \$out, stderr => \$err);
is($rc, 0, "the fuzz procedure ran to the end (seed $seed)")
  or diag "psql: $err\nserver log:\n" . crashes();
note sprintf('fuzz: %.1f s', time - $t0);
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server accepts connections');

# Directed calls: values that the random pools leave out because a wrong
# answer to them would stop the rest of the run.
# Each in a session of its own, those that could crash the server last.
$node->safe_psql('postgres',
	"SELECT job_engine.register_handler('fuzz_edge_ok', 'fuzz.h_ok(jsonb)', queue => 'fuzz_edge_q')");
for my $edge (
	[ 'schedule by a role that cannot log in',
		q{SELECT job_engine.schedule('fuzz_edge_s', '0 0 1 1 *', 'fuzz_edge_ok')}, 'true' ],
	[ 'submit with a two-dimensional depends_on',
		q{SELECT job_engine.submit('fuzz_edge_ok', depends_on => ARRAY[[1, 2], [3, 4]]::bigint[])} ],
	[ 'register_handler with function OID 0',
		q{SELECT job_engine.register_handler('fuzz_edge_oid0', 0::oid::regprocedure, queue => 'fuzz_edge_q', max_attempts => 1)} ],
	[ 'register_handler with a missing function OID',
		q{SELECT job_engine.register_handler('fuzz_edge_nofn', 4294967295::oid::regprocedure, queue => 'fuzz_edge_q', max_attempts => 1)} ],
	[ 'submit to fuzz_edge_oid0', q{SELECT job_engine.submit('fuzz_edge_oid0')} ],
	[ 'submit to fuzz_edge_nofn', q{SELECT job_engine.submit('fuzz_edge_nofn')} ])
{
	my ($label, $stmt, $as_user) = @$edge;
	$node->poll_query_until('postgres', 'SELECT true');
	$node->psql('postgres',
		"SELECT fuzz.try('edge: $label', \$edge\$$stmt\$edge\$, " . ($as_user // 'false') . ')');
}
ok( $node->poll_query_until(
		'postgres', q{
SELECT NOT EXISTS (SELECT 1 FROM job_engine._jobs WHERE starts_with(handler, 'fuzz_edge')
                      AND state IN ('created', 'running', 'retrying'))}),
	'the jobs of the directed calls finish');
is( $node->safe_psql(
		'postgres', q{
SELECT coalesce(string_agg(fn || ': ' || sqlstate, E'\n'), '') FROM fuzz.calls
 WHERE fn LIKE 'edge: register_handler with %' AND sqlstate = '00000'}),
	'', 'register_handler refuses function OIDs that name no function');

is($node->safe_psql('postgres', 'SELECT count(*) FROM fuzz.calls WHERE i > 0'), $ncalls,
	"$ncalls random calls were made");
note "fuzz: outcomes by function:\n"
  . $node->safe_psql(
	'postgres', q{
SELECT fn || ': ' || count(*) || ' calls, ' || count(*) FILTER (WHERE sqlstate = '00000') || ' ok, '
       || coalesce(round(sum(ms)) || ' ms; ', '')
       || coalesce(string_agg(DISTINCT sqlstate, ' ') FILTER (WHERE sqlstate <> '00000'), '')
  FROM fuzz.calls GROUP BY fn ORDER BY fn});

is( $node->safe_psql(
		'postgres', q{
SELECT coalesce(string_agg(format('call %s %s%s: %s %s', i, fn, CASE WHEN as_user THEN ' (as fuzz_user)' ELSE '' END,
                                  sqlstate, message), E'\n' ORDER BY i), '')
  FROM fuzz.calls WHERE sqlstate LIKE 'XX%'}),
	'', "no internal error (SQLSTATE class XX), seed $seed");
is( $node->safe_psql(
		'postgres', q{
SELECT coalesce(string_agg(format('call %s %s: %s %s [%s]', i, fn, sqlstate, message, left(stmt, 120)),
                           E'\n' ORDER BY i), '')
  FROM fuzz.calls WHERE sqlstate IN ('42601', '42703', '42702', '42P01', '42725', '42P18')}),
	'', "no error from the extension's own SQL (42601, 42703, 42702, 42P01, 42725, 42P18), seed $seed");
# Random arguments rarely pass every check of a call with many of them
# (submit has ten), so a given seed may never complete a particular one;
# most of the core functions must have, or the fuzz never got past
# validation at all.
cmp_ok( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM unnest(ARRAY['register_handler', 'submit',
       'submit_many', 'publish', 'abort', 'subscribe', 'configure_queue']) AS f(fn)
 WHERE EXISTS (SELECT 1 FROM fuzz.calls c WHERE c.fn = f.fn AND c.sqlstate = '00000')}),
	'>=', 4, "most core functions also succeeded now and then (the fuzz reached past validation), seed $seed");
is($node->safe_psql('postgres', "SELECT to_regclass('fuzz.victim') IS NOT NULL"),
	't', 'no injected statement ever ran (fuzz.victim still exists)');

# The server and the workers.
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
is(crashes(), '', 'no backend crashed');
is( $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'"),
	$supervisor, 'the supervisor never restarted');

# Pause every queue and wait for the executors to go idle: then nothing may
# be running, and the tables must agree with each other.
$node->safe_psql('postgres',
	'SELECT job_engine.pause_queue(name) FROM job_engine.queues; SELECT cron.unschedule(jobid) FROM cron.job;');
ok( $node->poll_query_until(
		'postgres', q{
SELECT NOT EXISTS (SELECT 1 FROM job_engine._jobs WHERE state = 'running')
   AND NOT EXISTS (SELECT 1 FROM job_engine.workers WHERE state <> 'idle')}),
	'with every queue paused, the executors go idle and no job is running')
  or diag($node->safe_psql('postgres', q{
SELECT string_agg(format('job %s queue %s attempt %s worker %s (%s)', j.id, j.queue, j.attempts,
                         j.worker_pid, coalesce(w.state, 'no such executor')), E'\n')
  FROM job_engine._jobs j LEFT JOIN job_engine.workers w ON w.pid = j.worker_pid
 WHERE j.state = 'running'}),
	$node->safe_psql('postgres', q{SELECT string_agg(format('%s %s %s', name, concurrency, group_commit), ', ') FROM job_engine.queues}));

my %consistency = (
	'no job is running without a running attempt' => q{
SELECT count(*) FROM job_engine._jobs j
 WHERE j.state = 'running'
   AND NOT EXISTS (SELECT 1 FROM job_engine._attempts a
                    WHERE a.job_id = j.id AND a.attempt = j.attempts AND a.outcome = 'running')},
	'no attempt is left running' => q{
SELECT count(*) FROM job_engine._attempts WHERE outcome = 'running'},
	'the attempts column counts the attempt rows' => q{
SELECT count(*) FROM job_engine._jobs j
 WHERE j.attempts <> (SELECT count(*) FROM job_engine._attempts a WHERE a.job_id = j.id)},
	'attempt numbers run 1..attempts' => q{
SELECT count(*) FROM job_engine._attempts a JOIN job_engine._jobs j ON j.id = a.job_id
 WHERE a.attempt > j.attempts},
	'no terminal job has a running attempt' => q{
SELECT count(*) FROM job_engine._jobs j JOIN job_engine._attempts a ON a.job_id = j.id
 WHERE j.state IN ('succeeded', 'failed', 'aborted') AND a.outcome = 'running'},
	'terminal jobs have a finish time, waiting jobs none' => q{
SELECT count(*) FROM job_engine._jobs
 WHERE (state IN ('succeeded', 'failed', 'aborted')) <> (finished_at IS NOT NULL)},
	'finished attempts have a finish time' => q{
SELECT count(*) FROM job_engine._attempts WHERE outcome <> 'running' AND finished_at IS NULL},
	'a succeeded job has exactly one succeeded attempt, its last' => q{
SELECT count(*) FROM job_engine._jobs j
 WHERE j.state = 'succeeded'
   AND (SELECT string_agg(a.outcome::text, ',') FROM job_engine._attempts a
         WHERE a.job_id = j.id AND a.outcome = 'succeeded') IS DISTINCT FROM 'succeeded'
    OR j.state = 'succeeded'
   AND NOT EXISTS (SELECT 1 FROM job_engine._attempts a
                    WHERE a.job_id = j.id AND a.attempt = j.attempts AND a.outcome = 'succeeded')},
	'no retrying job has used up its attempts' => q{
SELECT count(*) FROM job_engine._jobs WHERE state = 'retrying' AND attempts >= max_attempts},
	'no waiting job depends on a failed or aborted job' => q{
SELECT count(*) FROM job_engine._jobs j JOIN job_engine._dependencies d ON d.job_id = j.id
  JOIN job_engine._jobs p ON p.id = d.depends_on
 WHERE j.state IN ('created', 'retrying') AND p.state IN ('failed', 'aborted')},
	'every handler names an existing function (or a C symbol)' => q{
SELECT count(*) FROM job_engine.handlers h
 WHERE h.fn IS NOT NULL AND to_regprocedure(h.fn) IS NULL},
	'every job names a registered handler or finished' => q{
SELECT count(*) FROM job_engine._jobs j
 WHERE j.state IN ('created', 'retrying')
   AND NOT EXISTS (SELECT 1 FROM job_engine.handlers h WHERE h.name = j.handler)},
	'at most one live job per (handler, owner, idempotency key)' => q{
SELECT count(*) FROM (SELECT 1 FROM job_engine._jobs
                       WHERE idempotency_key IS NOT NULL AND state IN ('created', 'running', 'retrying')
                       GROUP BY handler, owner, idempotency_key HAVING count(*) > 1) s});
for my $what (sort keys %consistency)
{
	is($node->safe_psql('postgres', $consistency{$what}), '0', "consistency: $what");
}

# A normal job still runs, on a fresh queue.
my $final = $node->safe_psql(
	'postgres', q{
SELECT job_engine.register_handler('fuzz_final', 'fuzz.h_ok(jsonb)', queue => 'fuzz_final_q');
SELECT job_engine.submit('fuzz_final', '{"last": true}');});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $final"),
	'a normal job submitted after the fuzz succeeds');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'job_engine executor'"),
	'2', 'both executors are still there');

diag "fuzz seed was $seed (rerun with JE_FUZZ_SEED=$seed)"
  if grep { !$_ } Test::More->builder->summary;
$node->stop;
done_testing();

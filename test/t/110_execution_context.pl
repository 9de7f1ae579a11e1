# An ExecutionContext belongs to one attempt (docs/architecture.md, Contract, §3 and §7).
#
# Nothing a handler leaves in its backend reaches the next attempt, of the
# same owner or of another, and a job runs with what a session of its owner
# would have.  One executor serves the database (max_workers = 1), so the
# jobs of each sequence below run one after the other in the same executor
# slot, in the order they were submitted.
#
#  1. dblink: a superuser's job leaves a connection open; the next job
#     (alice's, or the superuser's own) must not find it.
#  2. setseed: the random() sequence a job seeded is not drawn by the next.
#  3. Cursors, large-object descriptors, SET CONSTRAINTS, prepared
#     statements, temporary tables, settings and SET ROLE left by an attempt, for the
#     next attempt of the same or another owner; one attempt per
#     transaction, then in a group-commit queue.  Deferred triggers of the
#     owner fire as the owner.  In a group: a cancel-swallowing job that its
#     owner aborts, a late cancel, and an aborted job run again.
#  4. session_user and current_user inside a job are the owner.
#  5. The owner's ALTER ROLE ... SET settings apply to its jobs, then the
#     handler's own SET clauses.
#  6. What an ordinary session of the owner may do works in a job (REFRESH
#     MATERIALIZED VIEW CONCURRENTLY, temporary tables), without any way out
#     of the owner's rights: SET ROLE to a foreign role fails, and no role
#     change outlives the attempt.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('execution_context', max_workers => 1);

my $terminal = "('succeeded', 'failed', 'aborted')";

# Runs SQL in database postgres, optionally as a role; returns its output.
sub sql
{
	my ($query, $role) = @_;
	$query = "SET ROLE $role;\n$query" if $role;
	return $node->safe_psql('postgres', $query);
}

# Waits until every job of the list is terminal.
sub wait_terminal
{
	my @ids = @_;
	my $list = join(',', @ids);
	return $node->poll_query_until('postgres',
		"SELECT count(*) = " . scalar(@ids) . " FROM job_engine.jobs WHERE id IN ($list) AND state IN $terminal");
}

# start_in_order(QUEUE, [HANDLER, ROLE, ARGS], ...): submits the jobs to the
# paused queue and resumes it; returns their ids.  With one executor they
# run one after the other in this order (as one group in a group-commit
# queue).
sub start_in_order
{
	my ($queue, @jobs) = @_;
	sql("SELECT job_engine.pause_queue('$queue')");
	my @ids;
	for my $job (@jobs)
	{
		(my $args = $job->[2]) =~ s/'/''/g;
		push @ids, sql("SELECT job_engine.submit('$job->[0]', '$args')", $job->[1]);
	}
	sql("SELECT job_engine.resume_queue('$queue')");
	return @ids;
}

# run_in_order: start_in_order, then waits for all of the jobs.
sub run_in_order
{
	my @ids = start_in_order(@_);
	ok(wait_terminal(@ids), "jobs " . join(',', @ids) . " finish");
	return @ids;
}

# A field of a job's result ('' when NULL); '<no result: STATE>' when the
# job has no result, so that no check passes because its job failed.
sub field
{
	my ($id, $key) = @_;
	return sql(qq{
SELECT CASE WHEN result IS NULL THEN '<no result: ' || state || '>' ELSE result ->> '$key' END
  FROM job_engine.jobs WHERE id = $id});
}

# "state: attempt outcome sqlstate, ..." of a job.
sub outcome
{
	my ($id) = @_;
	return sql(qq{
SELECT j.state || ': ' || string_agg(concat_ws(' ', a.attempt, a.outcome, a.sqlstate), ', ' ORDER BY a.attempt)
  FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
 WHERE j.id = $id GROUP BY j.state});
}

sql(q{
CREATE EXTENSION job_engine;
CREATE EXTENSION dblink;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE app LOGIN;
CREATE ROLE alice_team;
GRANT alice_team TO alice;

-- What only its owner may read.
CREATE TABLE public.secret_alice (s text);
CREATE TABLE public.secret_bob (s text);
INSERT INTO public.secret_alice VALUES ('alice secret 1'), ('alice secret 2');
INSERT INTO public.secret_bob VALUES ('bob secret 1'), ('bob secret 2');
ALTER TABLE public.secret_alice OWNER TO alice;
ALTER TABLE public.secret_bob OWNER TO bob;

-- A deferrable foreign key, checked at once unless someone deferred it.
CREATE TABLE public.fk_parent (id integer PRIMARY KEY);
CREATE TABLE public.fk_child (pid integer REFERENCES public.fk_parent DEFERRABLE INITIALLY IMMEDIATE);
GRANT INSERT ON public.fk_child TO PUBLIC;

-- Leaves in its session everything a handler can: an open cursor on its
-- owner's secret (one row fetched), an open large-object descriptor,
-- deferred constraints, a random seed, a setting, and, where allowed, a
-- prepared statement and a temporary table.
CREATE FUNCTION public.dirty(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    c refcursor;    -- PL/pgSQL names it "<unnamed portal N>"
    t text;
    fd integer;
BEGIN
    OPEN c FOR EXECUTE format('SELECT s FROM public.%I ORDER BY s', a ->> 'table');
    FETCH c INTO t;
    fd := lo_open((a ->> 'lo')::oid, 262144);   -- INV_READ
    SET CONSTRAINTS ALL DEFERRED;
    PERFORM setseed(0.5);
    PERFORM set_config('work_mem', '7777kB', false);
    BEGIN
        EXECUTE 'PREPARE leaked_stmt AS SELECT 1';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    BEGIN
        CREATE TEMP TABLE scratch AS SELECT 1 AS x;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    BEGIN
        EXECUTE format('SET ROLE %I', current_user);
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN jsonb_build_object('read', t, 'portal', c::text, 'fd', fd);
END
$$;

-- Reports what its session holds: whatever it can read through cursors
-- and large-object descriptors it did not open, whether deferrable
-- constraints are deferred, who it is, settings, prepared statements, the
-- temporary table, dblink connections and the next random() draws.
CREATE FUNCTION public.probe(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    cursors text[] := '{}';
    los text[] := '{}';
    -- The cursors it can name: those listed, and PL/pgSQL's unnamed ones.
    names text[] := ARRAY(SELECT name FROM pg_cursors
                          UNION SELECT format('<unnamed portal %s>', i) FROM generate_series(1, 1000) AS i);
    r refcursor;
    t text;
    mode text;
    dblink_exec text;
    dblink_seen text := coalesce(array_to_string(dblink_get_connections(), ','), '');
BEGIN
    -- With a['dblink_exec']: runs it through a connection named 'reports'.
    IF a ? 'dblink_exec' THEN
        BEGIN
            PERFORM dblink_exec('reports', a ->> 'dblink_exec');
            dblink_exec := 'ran';
        EXCEPTION WHEN OTHERS THEN
            dblink_exec := SQLSTATE;
        END;
    END IF;
    FOREACH r IN ARRAY names LOOP
        BEGIN
            FETCH ABSOLUTE 1 FROM r INTO t;
            IF FOUND THEN
                cursors := cursors || (r || ': ' || t);
            END IF;
        EXCEPTION
            WHEN invalid_cursor_name THEN NULL;
            WHEN object_not_in_prerequisite_state THEN
                cursors := cursors || (r || ': open');
        END;
    END LOOP;
    FOR fd IN 0..31 LOOP
        BEGIN
            los := los || (fd || ': ' || convert_from(loread(fd, 100), 'UTF8'));
        EXCEPTION WHEN undefined_object THEN NULL;
        END;
    END LOOP;
    BEGIN
        INSERT INTO public.fk_child VALUES (-1);
        RAISE EXCEPTION 'deferred';   -- undoes the insert
    EXCEPTION
        WHEN foreign_key_violation THEN mode := 'immediate';
        WHEN raise_exception THEN mode := 'deferred';
        -- A deferred check cannot be queued in a security-restricted operation.
        WHEN insufficient_privilege THEN mode := 'deferred: ' || SQLERRM;
    END;
    RETURN jsonb_build_object(
        'cursors', array_to_string(cursors, '; '),
        'los', array_to_string(los, '; '),
        'constraints', mode,
        'current_user', current_user::text,
        'session_user', session_user::text,
        'superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
        'work_mem', current_setting('work_mem'),
        'search_path', current_setting('search_path'),
        'prepared', (SELECT count(*) FROM pg_prepared_statements),
        'temp_table', to_regclass('pg_temp.scratch') IS NOT NULL,
        'dblink', dblink_seen,
        'dblink_exec', dblink_exec,
        'draws', (SELECT array_agg(random())::text FROM generate_series(1, 3)));
END
$$;

CREATE FUNCTION public.dbl_open(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    before text := coalesce(array_to_string(dblink_get_connections(), ','), '');
BEGIN
    PERFORM dblink_connect('reports', a ->> 'conn');
    RETURN jsonb_build_object('before', before);
END
$$;

-- Runs a['sql'], then says who it is; with a['quiet'] an error is swallowed.
CREATE FUNCTION public.run_as(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE a ->> 'sql';
    EXCEPTION WHEN OTHERS THEN
        IF NOT coalesce((a ->> 'quiet')::boolean, false) THEN
            RAISE;
        END IF;
    END;
    RETURN jsonb_build_object('current_user', current_user::text,
        'superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
END
$$;

-- A deferred constraint trigger, fired at commit: it notes who it runs as.
CREATE TABLE public.trig_log (who text, superuser boolean);
GRANT INSERT ON public.trig_log TO PUBLIC;
CREATE FUNCTION public.trig_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trig_log SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    RETURN NULL;
END
$$;
CREATE TABLE public.alice_t (x integer);
ALTER TABLE public.alice_t OWNER TO alice;
SET ROLE alice;
CREATE CONSTRAINT TRIGGER note AFTER INSERT ON public.alice_t
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.trig_note();
RESET ROLE;

-- Role settings (issue 13, item 5).
CREATE SCHEMA app_s AUTHORIZATION app;
CREATE TABLE app_s.things (x integer);
INSERT INTO app_s.things VALUES (1), (2), (3);
ALTER TABLE app_s.things OWNER TO app;
ALTER ROLE app SET search_path = app_s, public;
ALTER ROLE app IN DATABASE postgres SET work_mem = '7MB';
CREATE FUNCTION public.app_count(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RETURN jsonb_build_object('things', (SELECT count(*) FROM things),
        'search_path', current_setting('search_path'), 'work_mem', current_setting('work_mem'));
END
$$;
CREATE FUNCTION public.app_own(a jsonb) RETURNS jsonb LANGUAGE sql SET work_mem = '3MB' AS $$
    SELECT jsonb_build_object('search_path', current_setting('search_path'),
                              'work_mem', current_setting('work_mem'))
$$;

-- Ordinary work (issue 13, item 6).
CREATE TABLE public.sales (k integer, v integer);
INSERT INTO public.sales VALUES (1, 10), (2, 20);
CREATE MATERIALIZED VIEW public.totals AS SELECT k, sum(v) AS total FROM public.sales GROUP BY k;
CREATE UNIQUE INDEX ON public.totals (k);
ALTER TABLE public.sales OWNER TO alice;
ALTER MATERIALIZED VIEW public.totals OWNER TO alice;
INSERT INTO public.sales VALUES (1, 5), (3, 30);
CREATE FUNCTION public.refresh_totals(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.totals;
    RETURN jsonb_build_object('total', (SELECT sum(total) FROM public.totals));
END
$$;
CREATE FUNCTION public.temp_make(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE scratch AS SELECT g FROM generate_series(1, 3) AS g;
    RETURN jsonb_build_object('rows', (SELECT count(*) FROM scratch));
END
$$;

-- Group commit: a quick job, a job that swallows its cancel, a job that
-- takes its cancel too late, and one that counts its runs in a sequence
-- (nextval is not undone by a rollback).
CREATE FUNCTION public.quick(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('current_user', current_user::text)
$$;
CREATE FUNCTION public.swallow(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '60 seconds';
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        BEGIN
            PERFORM pg_sleep(0.05);
        EXCEPTION WHEN query_canceled THEN NULL;
        END;
    END LOOP;
    RETURN '{}';
END
$$;
CREATE SEQUENCE public.late_phase;
GRANT USAGE ON SEQUENCE public.late_phase TO PUBLIC;
-- Marks (in late_phase) that it has reached one long expression that never
-- checks for interrupts, whose end divides by a['zero'].
CREATE FUNCTION public.late(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    big text := repeat('x', 50000000);
BEGIN
    RETURN to_jsonb((nextval('public.late_phase') * 0)::text
        || md5(big) || md5(big) || md5(big) || md5(big) || md5(big)
        || md5(big) || md5(big) || md5(big) || md5(big) || md5(big)
        || (1 / (a ->> 'zero')::integer)::text);
END
$$;
CREATE SEQUENCE public.runs_first;
CREATE SEQUENCE public.runs_second;
GRANT USAGE ON SEQUENCE public.runs_first, public.runs_second TO PUBLIC;
CREATE FUNCTION public.counted(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval(a ->> 'seq');
    PERFORM pg_sleep((a ->> 'sleep')::float8);
    RETURN a;
END
$$;

SELECT job_engine.register_handler(h, ('public.' || h || '(jsonb)')::regprocedure, max_attempts => 1)
  FROM unnest(ARRAY['dirty', 'probe', 'dbl_open', 'run_as', 'app_count', 'app_own',
                    'refresh_totals', 'temp_make']) AS h;
SELECT job_engine.register_handler('insert_alice_t', 'public.run_as(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('g_' || h, ('public.' || h || '(jsonb)')::regprocedure, queue => 'g',
                                   max_attempts => 1)
  FROM unnest(ARRAY['dirty', 'probe', 'swallow', 'late', 'counted', 'app_count', 'app_own']) AS h;
-- Retried, so that a crashed or cancelled attempt shows in its history.
SELECT job_engine.register_handler('g_quick', 'public.quick(jsonb)', queue => 'g', max_attempts => 3,
                                   backoff_base => '10 ms');
SELECT job_engine.configure_queue('g', group_commit => 8);
});

# Large objects of alice and bob: only their owner may open them.
my %lo;
for my $who (qw(alice bob))
{
	$lo{$who} = sql("SELECT lo_from_bytea(0, convert_to('$who LO secret', 'UTF8'))");
	sql("ALTER LARGE OBJECT $lo{$who} OWNER TO $who");
}
my %dirty_args = map { $_ => qq({"table": "secret_$_", "lo": $lo{$_}}) } qw(alice bob);

# The draws of random() right after setseed(0.5).
my $seeded = (split /\n/, sql("SELECT setseed(0.5);\nSELECT array_agg(random())::text FROM generate_series(1, 3)"))[-1];

# ===========================================================================
# 1. dblink connections
# ===========================================================================
my $conn = $node->connstr('postgres');
$conn =~ s/'//g;    # goes into a JSON string inside a SQL literal
my @dbl = run_in_order(
	'default',
	[ 'dbl_open', undef, qq({"conn": "$conn"}) ],
	[ 'dbl_open', undef, qq({"conn": "$conn"}) ],
	[ 'probe', 'alice', '{"dblink_exec": "ALTER ROLE alice SUPERUSER"}' ],
	[ 'probe', 'alice', '{}' ]);
is(outcome($dbl[0]), 'succeeded: 1 succeeded', "dblink: the superuser's job opens connection 'reports'");
is(outcome($dbl[1]), 'succeeded: 1 succeeded',
	"dblink: the owner's next job opens 'reports' again (no 42710 duplicate connection name)");
is(field($dbl[1], 'before'), '', "dblink: the owner's next job starts with no dblink connection");
is(field($dbl[2], 'dblink'), '', "dblink: alice's next job does not see the superuser's connection");
isnt(field($dbl[2], 'dblink_exec'), 'ran',
	"dblink: alice's job cannot dblink_exec through the superuser's connection");
is(sql("SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'"), 'f', 'dblink: alice did not become superuser');
is(field($dbl[3], 'dblink'), '', "dblink: alice's job after that sees no dblink connection either");
sql('ALTER ROLE alice NOSUPERUSER');

# ===========================================================================
# 2. setseed
# ===========================================================================
my @seed = run_in_order(
	'default',
	[ 'dirty', 'alice', $dirty_args{alice} ],
	[ 'probe', 'bob', '{}' ],
	[ 'dirty', 'alice', $dirty_args{alice} ],
	[ 'probe', 'alice', '{}' ]);
is(outcome($seed[0]), 'succeeded: 1 succeeded', 'setseed: the seeding job succeeds');
isnt(field($seed[1], 'draws'), $seeded, "setseed: bob's next job does not draw the sequence alice's job seeded");
isnt(field($seed[3], 'draws'), $seeded, "setseed: the owner's next job does not draw the sequence it seeded");

# ===========================================================================
# 3. session state left by an attempt, one attempt per transaction
# ===========================================================================
# check_clean(LABEL, PROBE_JOB, OWNER): the probe job found nothing left
# behind.
sub check_clean
{
	my ($label, $id, $owner) = @_;
	is(outcome($id), 'succeeded: 1 succeeded', "$label: the probing job succeeds");
	is(field($id, 'current_user'), $owner, "$label: SET ROLE does not carry over");
	is(field($id, 'cursors'), '', "$label: no cursor left open by the earlier attempt can be fetched from");
	is(field($id, 'los'), '', "$label: no large-object descriptor left open by the earlier attempt can be read");
	is(field($id, 'constraints'), 'immediate', "$label: SET CONSTRAINTS ALL DEFERRED does not carry over");
	is(field($id, 'work_mem'), '4MB', "$label: a setting made with set_config(..., false) does not carry over");
	is(field($id, 'prepared'), '0', "$label: no prepared statement is left");
	is(field($id, 'temp_table'), 'false', "$label: no temporary table is left");
	isnt(field($id, 'draws'), $seeded, "$label: the random seed does not carry over");
}

my @other = run_in_order('default', [ 'dirty', 'bob', $dirty_args{bob} ], [ 'probe', 'alice', '{}' ]);
is(outcome($other[0]), 'succeeded: 1 succeeded', "bob's job leaving session state succeeds");
check_clean("one attempt per transaction, bob then alice", $other[1], 'alice');

my @same = run_in_order('default', [ 'dirty', 'bob', $dirty_args{bob} ], [ 'probe', 'bob', '{}' ]);
check_clean("one attempt per transaction, bob then bob", $same[1], 'bob');

# A deferred trigger of the owner fires when the attempt commits: as the
# owner, as it would in the owner's own session.
my @trig = run_in_order('default', [ 'insert_alice_t', 'alice', '{"sql": "INSERT INTO public.alice_t VALUES (1)"}' ]);
is(outcome($trig[0]), 'succeeded: 1 succeeded', "deferred trigger: alice's job inserting into her table succeeds");
is(sql("SELECT string_agg(who || ' ' || superuser, ',') FROM public.trig_log"), 'alice false',
	"deferred trigger: alice's deferred trigger runs as alice, not as a superuser");

# ===========================================================================
# 3. the same in a group-commit queue (queue g, group_commit => 8)
# ===========================================================================
my @g_other = run_in_order('g', [ 'g_dirty', 'bob', $dirty_args{bob} ], [ 'g_probe', 'alice', '{}' ]);
is(outcome($g_other[0]), 'succeeded: 1 succeeded', "group: bob's job leaving session state succeeds");
check_clean("group, bob then alice", $g_other[1], 'alice');

my @g_same = run_in_order('g', [ 'g_dirty', 'bob', $dirty_args{bob} ], [ 'g_probe', 'bob', '{}' ]);
check_clean("group, bob then bob", $g_same[1], 'bob');

# ===========================================================================
# 4. session_user and current_user
# ===========================================================================
is( field($other[1], 'current_user') . ' ' . field($other[1], 'session_user'),
	'alice alice', "alice's job: current_user and session_user are alice");
is( field($same[1], 'current_user') . ' ' . field($same[1], 'session_user'),
	'bob bob', "bob's job: current_user and session_user are bob");
is( field($g_other[1], 'current_user') . ' ' . field($g_other[1], 'session_user'),
	'alice alice', "alice's job in a group: current_user and session_user are alice");

# ===========================================================================
# 5. the owner's role settings
# ===========================================================================
is($node->safe_psql('postgres', 'SELECT count(*) FROM things', extra_params => [ '-U', 'app' ]),
	'3', "app's own session finds app_s.things through its role's search_path");
my @app = run_in_order(
	'default',
	[ 'app_count', 'app', '{}' ],
	[ 'app_own', 'app', '{}' ],
	[ 'probe', 'bob', '{}' ]);
is(outcome($app[0]), 'succeeded: 1 succeeded',
	"role settings: app's job using an unqualified table of app_s succeeds (no 42P01)");
is(field($app[0], 'things'), '3', 'role settings: it finds app_s.things');
is(field($app[0], 'search_path'), 'app_s, public', "role settings: app's job has ALTER ROLE app SET search_path");
is(field($app[0], 'work_mem'), '7MB', "role settings: app's job has ALTER ROLE app IN DATABASE SET work_mem");
is(field($app[1], 'work_mem') . ' | ' . field($app[1], 'search_path'), '3MB | app_s, public',
	"role settings: the handler's own SET clause wins over the role's setting, the others stay");
is(field($app[2], 'search_path') . ' | ' . field($app[2], 'work_mem'), '"$user", public | 4MB',
	"role settings: app's settings do not reach bob's next job");

# In a group the attempts share one transaction and one read of the
# settings: each attempt still gets them, after the one before has undone
# its own (the SET clause of app_own) and the role's.
my @g_app = run_in_order(
	'g',
	[ 'g_app_count', 'app', '{}' ],
	[ 'g_app_own',   'app', '{}' ],
	[ 'g_app_count', 'app', '{}' ],
	[ 'g_probe',     'bob', '{}' ]);
is( sql("SELECT count(DISTINCT xmin::text) FROM job_engine._jobs WHERE id IN ($g_app[0], $g_app[1], $g_app[2])"),
	'1', 'role settings, group: the three jobs of app were recorded in one transaction');
is( join(' / ', map { field($_, 'search_path') . ' | ' . field($_, 'work_mem') } @g_app[0 .. 2]),
	'app_s, public | 7MB / app_s, public | 3MB / app_s, public | 7MB',
	"role settings, group: each of app's attempts gets the role's settings, the handler's SET clause only its own");
is(field($g_app[2], 'things'), '3', 'role settings, group: the third job finds app_s.things');
is(field($g_app[3], 'search_path') . ' | ' . field($g_app[3], 'work_mem'), '"$user", public | 4MB',
	"role settings, group: app's settings do not reach bob's next job");

# ===========================================================================
# 6. ordinary work, and no way out of the owner's rights
# ===========================================================================
my @work = run_in_order(
	'default',
	[ 'refresh_totals', 'alice', '{}' ],
	[ 'temp_make', 'alice', '{}' ],
	[ 'probe', 'alice', '{}' ],
	[ 'probe', 'bob', '{}' ]);
is(outcome($work[0]), 'succeeded: 1 succeeded',
	"alice's job runs REFRESH MATERIALIZED VIEW CONCURRENTLY on her view");
is(field($work[0], 'total'), '65', '... and the view is refreshed');
is(outcome($work[1]), 'succeeded: 1 succeeded', "alice's job creates and uses a temporary table");
is(field($work[1], 'rows'), '3', '... which holds its rows');
is(field($work[2], 'temp_table'), 'false', "the temporary table is gone for alice's next job");
is(field($work[3], 'temp_table'), 'false', "the temporary table is gone for bob's next job");

my @escape = run_in_order(
	'default',
	[ 'run_as', 'alice', '{"sql": "SET ROLE bob"}' ],
	[ 'run_as', 'alice', q({"sql": "SELECT set_config('role', 'bob', false)"}) ],
	[ 'run_as', 'alice', '{"sql": "SET SESSION AUTHORIZATION DEFAULT"}' ],
	[ 'run_as', 'alice', '{"sql": "RESET ROLE"}' ]);
like(outcome($escape[0]), qr/^failed: 1 failed 42501$/, "alice's SET ROLE bob (not a member) fails with 42501");
like(outcome($escape[1]), qr/^failed: 1 failed 42501$/, "alice's set_config('role', 'bob') fails with 42501");
for my $i (2, 3)
{
	my $what = $i == 2 ? 'SET SESSION AUTHORIZATION DEFAULT' : 'RESET ROLE';
	isnt(field($escape[$i], 'superuser'), 'true', "alice's $what does not make her job superuser");
}

my @outlive = run_in_order(
	'default',
	[ 'run_as', 'alice', '{"sql": "SET ROLE alice_team", "quiet": true}' ],
	[ 'probe', 'alice', '{}' ],
	[ 'run_as', 'alice', '{"sql": "SET SESSION AUTHORIZATION alice", "quiet": true}' ],
	[ 'probe', 'bob', '{}' ],
	[ 'run_as', 'alice', '{"sql": "SET ROLE alice_team", "quiet": true}' ],
	[ 'probe', 'bob', '{}' ]);
# (session_user is checked in section 4.)
is(field($outlive[1], 'current_user'), 'alice', "SET ROLE in alice's job does not outlive it (her next job)");
is(field($outlive[3], 'current_user'), 'bob',
	"SET SESSION AUTHORIZATION in alice's job does not outlive it (bob's next job)");
is(field($outlive[5], 'current_user'), 'bob', "SET ROLE in alice's job does not outlive it (bob's next job)");

# ===========================================================================
# 3. group commit: aborts and cancels of one owner's job, another's attempt
# ===========================================================================
# abort_in_group(LABEL, READY, ABORTED, [HANDLER, ROLE, ARGS], ...): runs the
# jobs as one group of queue g and, once the query READY (which may name a
# job as JOB<n>, its index) holds, has the owner of job ABORTED (an index)
# abort it; waits for all of them and returns their ids.
sub abort_in_group
{
	my ($label, $ready, $aborted, @jobs) = @_;
	my @ids = start_in_order('g', @jobs);
	$ready =~ s/JOB(\d)/$ids[$1]/g;
	ok($node->poll_query_until('postgres', $ready), "$label: the group reaches the point of the abort");
	is(sql("SELECT job_engine.abort($ids[$aborted], 'stop')", $jobs[$aborted][1]),
		't', "$label: $jobs[$aborted][1] aborts job $ids[$aborted]");
	ok(wait_terminal(@ids), "$label: the jobs finish");
	is(outcome($ids[$aborted]), 'aborted: 1 aborted', "$label: the aborted job has one attempt, aborted");
	return @ids;
}

my $running = 'SELECT EXISTS (SELECT 1 FROM job_engine.workers WHERE job_id = JOB1)';

# alice aborts her cancel-swallowing job while it runs in a group after
# bob's finished job: her executor ends after abort_grace, and bob's
# attempt, which had succeeded, must not be recorded crashed.
my @swallow = abort_in_group('group, swallowed cancel', $running, 1,
	[ 'g_quick', 'bob', '{}' ], [ 'g_swallow', 'alice', '{}' ]);
is(outcome($swallow[0]), 'succeeded: 1 succeeded',
	"group: bob's finished attempt is not recorded crashed when alice's swallowing job is ended");

# A cancel sent by alice's abort reaches her attempt when it can no longer
# take it; it must not fail bob's attempt with 57014.
my @late = abort_in_group('group, late cancel', 'SELECT is_called FROM public.late_phase', 0,
	[ 'g_late', 'alice', '{"zero": 0}' ], [ 'g_quick', 'bob', '{}' ]);
is(outcome($late[1]), 'succeeded: 1 succeeded',
	"group: the late cancel of alice's job does not fail bob's attempt (57014)");

# A job aborted while its group still runs is terminal: its handler must
# not run again when the group is run again.
my @rerun = abort_in_group('group, abort mid-group', $running, 0,
	[ 'g_counted', 'alice', '{"seq": "public.runs_first", "sleep": 0}' ],
	[ 'g_counted', 'alice', '{"seq": "public.runs_second", "sleep": 1.5}' ]);
is(outcome($rerun[1]), 'succeeded: 1 succeeded', 'group: the job running during the abort succeeds');
is(sql('SELECT last_value FROM public.runs_first'), '1',
	"group: the aborted job's handler ran once, not again when the group was re-run");

done_testing();

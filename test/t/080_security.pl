# Security (docs/architecture.md §7): no role gets in where it should not.
#
#  1. Visibility and abort follow role membership; the extension's tables
#     cannot be touched directly; administration is not granted to PUBLIC;
#     register_c_handler is for superusers even when EXECUTE is granted.
#  2. EXECUTE on the handler is checked at submit and again at run time; a
#     job whose owner role was dropped fails cleanly; with
#     job_engine.allow_superuser_jobs = off superusers cannot own jobs.
#  3. Inside a handler: SET ROLE and SET SESSION AUTHORIZATION are refused
#     and recorded, temporary tables work; settings and role do not outlive
#     the attempt, and a job of another owner runs in a fresh executor.
#  4. Hostile install: functions, operators, an implicit cast and relations
#     planted in schema public (first on search_path, for the installing
#     session and the workers) before CREATE EXTENSION never run, whatever
#     the API does.
#  5. A schema named job_engine created beforehand by an ordinary role must
#     not let that role run code with the workers' privileges.
#  6. pg_dump / pg_restore keep jobs, attempts, handlers, events,
#     subscriptions and queues with their ids; the sequences go on after
#     the restored ids.
use strict;
use warnings;

use IPC::Run;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node(
	'security',
	databases => 'postgres,hostile,squat,dumpsrc,dumpdst',
	# One executor slot per database: consecutive jobs run in order (section 3).
	max_workers => 1,
	max_worker_processes => 20);

my $terminal = "('succeeded', 'failed', 'aborted')";

# Runs SQL in a database, optionally as a role; returns its output.
sub sql
{
	my ($db, $query, $role) = @_;
	$query = "SET ROLE $role;\n$query" if $role;
	return $node->safe_psql($db, $query);
}

# Runs SQL that is expected to fail; returns "SQLSTATE: message", or "ok".
sub error_of
{
	my ($db, $query, $role) = @_;
	my ($out, $err) = ('', '');
	my $script = "\\set VERBOSITY verbose\n";
	$script .= "SET ROLE $role;\n" if $role;
	$node->psql($db, $script . $query, stdout => \$out, stderr => \$err);
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+([^\n]*)/ ? "$1: $2" : 'ok';
}

# Like poll_query_until, through safe_psql (so that the query may start
# with SET search_path in the hostile database).
sub poll_sql
{
	my ($db, $query) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		return 1 if sql($db, $query) eq 't';
		usleep(100_000);
	}
	diag "timed out waiting for: $query";
	return 0;
}

sub supervisor_of
{
	my ($db) = @_;
	return sql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor' AND datname = '$db'"
	);
}

# ===========================================================================
# 1. visibility, abort, direct access, administration
# ===========================================================================
sql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE sec_a;
CREATE ROLE sec_b;
CREATE ROLE sec_c IN ROLE sec_a;
CREATE ROLE sec_gone;
CREATE TABLE public.seen (job_id bigint, who text, search_path text,
                          statement_timeout text, app text, work_mem text);
GRANT INSERT, SELECT ON public.seen TO PUBLIC;
CREATE FUNCTION public.sec_ok(a jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT jsonb_build_object('user', current_user) $$;
CREATE FUNCTION public.sec_priv(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
REVOKE EXECUTE ON FUNCTION public.sec_priv(jsonb) FROM PUBLIC;
CREATE FUNCTION public.sec_set_role(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN EXECUTE 'SET ROLE ' || quote_ident(a ->> 'role'); RETURN '{}'; END $$;
CREATE FUNCTION public.sec_set_config_role(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN PERFORM set_config('role', a ->> 'role', false); RETURN '{}'; END $$;
CREATE FUNCTION public.sec_session_auth(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN EXECUTE 'SET SESSION AUTHORIZATION ' || quote_ident(a ->> 'role'); RETURN '{}'; END $$;
CREATE FUNCTION public.sec_temp(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN CREATE TEMP TABLE sec_tmp (x int); RETURN '{}'; END $$;
-- Changes whatever settings it may, tries to change role, and succeeds
-- (or fails, with a['fail']) after that.
CREATE FUNCTION public.sec_mutate(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('search_path', 'evil, public', false);
    PERFORM set_config('statement_timeout', '4321', false);
    PERFORM set_config('application_name', 'evil', false);
    SET work_mem = '7MB';
    BEGIN
        EXECUTE 'SET ROLE sec_b';
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    IF (a ->> 'fail')::boolean THEN
        RAISE EXCEPTION 'failing after changing settings' USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object('user', current_user);
END
$$;
CREATE FUNCTION public.sec_whoami(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.seen VALUES (job_engine.current_job_id(), current_user,
        current_setting('search_path'), current_setting('statement_timeout'),
        current_setting('application_name'), current_setting('work_mem'));
    RETURN jsonb_build_object('user', current_user, 'owner', job_engine.context() ->> 'owner');
END
$$;
SELECT job_engine.register_handler('sec_ok', 'public.sec_ok(jsonb)', queue => 'secq');
SELECT job_engine.register_handler('sec_priv', 'public.sec_priv(jsonb)', queue => 'secq',
                                   max_attempts => 1);
SELECT job_engine.register_handler(h, ('public.' || h || '(jsonb)')::regprocedure, max_attempts => 1)
  FROM unnest(ARRAY['sec_set_role', 'sec_set_config_role', 'sec_session_auth', 'sec_temp',
                    'sec_mutate', 'sec_whoami']) AS h;
});

my $a1 = sql('postgres', "SELECT job_engine.submit('sec_ok', run_at => now() + interval '1 day')", 'sec_a');
my $a2 = sql('postgres', "SELECT job_engine.submit('sec_ok', run_at => now() + interval '1 day')", 'sec_a');
my $b1 = sql('postgres', "SELECT job_engine.submit('sec_ok', run_at => now() + interval '1 day')", 'sec_b');
my $ours = "id IN ($a1, $a2, $b1)";

is(sql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM job_engine.jobs WHERE $ours", 'sec_c'),
	"$a1,$a2", "a member of role a sees a's jobs, not b's");
is(sql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM job_engine.jobs WHERE $ours", 'sec_b'),
	"$b1", "role b sees only its own job");
is( sql('postgres',
		"SELECT count(*) FROM job_engine.queue_stats WHERE queue = 'secq' AND created > 1", 'sec_b'),
	'0', "role b's queue_stats do not count a's jobs");

like(error_of('postgres', "SELECT job_engine.abort($a1, 'not mine')", 'sec_b'),
	qr/^P0002: .*does not exist/,
	"b's abort of a's job: P0002, the job does not exist for b");
like(error_of('postgres', "SELECT job_engine.wait($a1, '0')", 'sec_b'),
	qr/^P0002: .*does not exist/, "b's wait on a's job: P0002");
like(error_of('postgres', "SELECT job_engine.resubmit($a1)", 'sec_b'),
	qr/^P0002: .*does not exist/, "b's resubmit of a's job: P0002");
is(sql('postgres', "SELECT state || ' ' || coalesce(abort_reason, '-') FROM job_engine.jobs WHERE id = $a1"),
	'created -', "a's job is unaffected");
is(sql('postgres', "SELECT job_engine.abort($a2, 'member of a')", 'sec_c'),
	't', "a member of role a aborts a's job");
is(sql('postgres', "SELECT state || ' ' || abort_reason FROM job_engine.jobs WHERE id = $a2"),
	'aborted member of a', '... which is aborted with the reason');

# Direct access to the tables, as a role without special privileges.
my %update_column = (
	'_jobs' => 'priority', '_attempts' => 'message', '_events' => 'payload',
	'_dependencies' => 'depends_on', 'handlers' => 'max_attempts',
	'queues' => 'paused', 'subscriptions' => 'event_type');
for my $table (sort keys %update_column)
{
	my $col = $update_column{$table};
	my @statements = (
		"INSERT INTO job_engine.$table DEFAULT VALUES",
		"UPDATE job_engine.$table SET $col = $col",
		"DELETE FROM job_engine.$table",
		"TRUNCATE job_engine.$table CASCADE");
	# _jobs, _attempts and _events are readable under their row-level
	# security policies (the views read them as the caller), checked below.
	push @statements, "SELECT 1 FROM job_engine.$table LIMIT 1"
	  if $table =~ /^_/ && $table !~ /^_(jobs|attempts|events)$/;
	for my $stmt (@statements)
	{
		like(error_of('postgres', $stmt, 'sec_b'), qr/^42501: /, "$stmt: refused (42501)");
	}
}
is(sql('postgres', "SELECT count(*) FROM job_engine.jobs WHERE $ours AND state = 'created'"),
	'2', 'the refused writes changed no job');
is(sql('postgres', "SELECT count(*) = (SELECT count(*) FROM job_engine.jobs) FROM job_engine._jobs", 'sec_b'),
	't', 'read directly, _jobs shows a role only the rows the jobs view shows it');
like(error_of('postgres', "SELECT idempotency_key FROM job_engine._jobs LIMIT 1", 'sec_b'), qr/^42501: /,
	'... and not the columns the view leaves out (42501)');
for my $pair (['_attempts', 'attempts'], ['_events', 'events'])
{
	my ($table, $view) = @$pair;
	is( sql('postgres',
			"SELECT count(*) = (SELECT count(*) FROM job_engine.$view) FROM job_engine.$table", 'sec_b'),
		't', "read directly, $table shows a role only the rows the $view view shows it");
}
like(error_of('postgres', "SELECT publisher FROM job_engine._events LIMIT 1", 'sec_b'), qr/^42501: /,
	'... and _events not the columns the events view leaves out (42501)');

my @admin = qw(register_handler register_c_handler unregister_handler pause_queue
  resume_queue configure_queue);
for my $fn (@admin)
{
	is( sql('postgres', qq{
SELECT has_function_privilege('sec_b', p.oid, 'EXECUTE')
       OR EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
                   WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE')
  FROM pg_proc p WHERE p.oid = 'job_engine.$fn'::regproc}),
		'f', "$fn is not executable by PUBLIC");
}
my %admin_call = (
	register_handler => "job_engine.register_handler('sec_x', 'public.sec_ok(jsonb)')",
	register_c_handler =>
	  "job_engine.register_c_handler('sec_x', '\$libdir/job_engine_example', 'hello_handler')",
	unregister_handler => "job_engine.unregister_handler('sec_ok')",
	pause_queue => "job_engine.pause_queue('secq')",
	resume_queue => "job_engine.resume_queue('secq')",
	configure_queue => "job_engine.configure_queue('secq', 1)");
for my $fn (@admin)
{
	like(error_of('postgres', "SELECT $admin_call{$fn}", 'sec_b'),
		qr/^42501: /, "a plain role calling $fn: 42501");
}

sql('postgres', 'GRANT EXECUTE ON FUNCTION job_engine.register_c_handler TO sec_a');
like(error_of('postgres', "SELECT $admin_call{register_c_handler}", 'sec_a'),
	qr/^42501: permission denied to register C handler/,
	'register_c_handler refuses a non-superuser even with EXECUTE granted (42501)');
sql('postgres', 'REVOKE EXECUTE ON FUNCTION job_engine.register_c_handler FROM sec_a');
is(sql('postgres', "SELECT count(*) FROM job_engine.handlers WHERE name = 'sec_x'"),
	'0', 'no handler was registered by the refused calls');

# ===========================================================================
# 2. EXECUTE at submit and at run time, dropped owners, superuser jobs
# ===========================================================================
like(error_of('postgres', "SELECT job_engine.submit('sec_priv')", 'sec_b'),
	qr/^42501: /, 'submit without EXECUTE on the handler function: 42501');

my $supervisor = supervisor_of('postgres');
sql('postgres', q{
GRANT EXECUTE ON FUNCTION public.sec_priv(jsonb) TO sec_b;
SELECT job_engine.pause_queue('secq');
});
my $revoked = sql('postgres', "SELECT job_engine.submit('sec_priv')", 'sec_b');
my $gone = sql('postgres', "SELECT job_engine.submit('sec_ok')", 'sec_gone');
my $fine = sql('postgres', "SELECT job_engine.submit('sec_ok')", 'sec_b');
sql('postgres', q{
REVOKE EXECUTE ON FUNCTION public.sec_priv(jsonb) FROM sec_b;
DROP ROLE sec_gone;
SELECT job_engine.resume_queue('secq');
});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM job_engine.jobs WHERE id IN ($revoked, $gone, $fine) AND state IN $terminal"),
	'the jobs of the paused queue finish after resume');
is( sql('postgres', qq{
SELECT j.state || ' ' || a.outcome || ' ' || a.sqlstate || ' ' || a.message
  FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = $revoked}),
	'failed failed 42501 permission denied for function sec_priv',
	'EXECUTE revoked after submit: the job fails at run time with 42501 recorded');
like( sql('postgres', qq{
SELECT j.state || ' ' || a.sqlstate || ' ' || a.message
  FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = $gone}),
	qr/^failed 42704 role \d+ owning job $gone no longer exists$/,
	'owner dropped while the job waited: it fails with 42704 and a clear message');
is(sql('postgres', "SELECT state || ' ' || (result ->> 'user') FROM job_engine.jobs WHERE id = $fine"),
	'succeeded sec_b', 'another job of the same queue runs as its owner');
is(supervisor_of('postgres'), $supervisor, 'the supervisor kept running');
my $later = sql('postgres', "SELECT job_engine.submit('sec_ok')", 'sec_b');
ok( $node->poll_query_until('postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $later"),
	'a job submitted afterwards succeeds');

# allow_superuser_jobs = off: refused at submit, and a superuser's job
# queued before the change fails at run time.
sql('postgres', "SELECT job_engine.pause_queue('secq')");
my $su_job = sql('postgres', "SELECT job_engine.submit('sec_ok')");
sql('postgres', 'ALTER SYSTEM SET job_engine.allow_superuser_jobs = off; SELECT pg_reload_conf();');
ok($node->poll_query_until('postgres', 'SHOW job_engine.allow_superuser_jobs', 'off'),
	'allow_superuser_jobs is off after a reload');
like(error_of('postgres', "SELECT job_engine.submit('sec_ok')"),
	qr/^42501: jobs owned by superuser .* are not allowed/, 'a superuser submit is refused (42501)');
like(error_of('postgres', "SELECT job_engine.submit_many('sec_ok', ARRAY['{}'::jsonb])"),
	qr/^42501: /, 'a superuser submit_many is refused (42501)');
my $b_job = sql('postgres', "SELECT job_engine.submit('sec_ok')", 'sec_b');
sql('postgres', "SELECT job_engine.resume_queue('secq')");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM job_engine.jobs WHERE id IN ($su_job, $b_job) AND state IN $terminal"),
	'the queued jobs finish');
is( sql('postgres', qq{
SELECT j.state || ' ' || a.sqlstate FROM job_engine.jobs j
  JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = $su_job}),
	'failed 42501', "a superuser's job queued before the change fails at run time (42501)");
is(sql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $b_job"),
	'succeeded', "an ordinary role's job still runs");
sql('postgres', 'ALTER SYSTEM RESET job_engine.allow_superuser_jobs; SELECT pg_reload_conf();');
ok($node->poll_query_until('postgres', 'SHOW job_engine.allow_superuser_jobs', 'on'),
	'allow_superuser_jobs is back on');

# ===========================================================================
# 3. role and settings inside a handler
# ===========================================================================
my %escape = (
	sec_set_role => qr/^cannot set parameter "role" within security-(definer function|restricted operation)$/,
	sec_set_config_role =>
	  qr/^cannot set parameter "role" within security-(definer function|restricted operation)$/,
	sec_session_auth =>
	  qr/^cannot set parameter "session_authorization" within security-(definer function|restricted operation)$/);
my %escape_job;
for my $h (sort keys %escape)
{
	$escape_job{$h} = sql('postgres', "SELECT job_engine.submit('$h', '{\"role\": \"sec_a\"}')", 'sec_c');
}
my $temp_job = sql('postgres', "SELECT job_engine.submit('sec_temp', '{}')", 'sec_c');
my $escape_ids = join(',', values %escape_job, $temp_job);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 4 FROM job_engine.jobs WHERE id IN ($escape_ids) AND state IN $terminal"),
	'the jobs trying to change role or create temp tables finish');
is(sql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $temp_job"),
	'succeeded', 'a temporary table is allowed, as in a session of the owner');
for my $h (sort keys %escape)
{
	my ($state, $sqlstate, $message) = split /\|/, sql('postgres', qq{
SELECT j.state, a.sqlstate, a.message FROM job_engine.jobs j
  JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id = $escape_job{$h}});
	is("$state $sqlstate", 'failed 42501', "$h: the job fails with 42501 recorded");
	like($message, $escape{$h}, "$h: the recorded message says why");
}

# Consecutive jobs in the one executor slot of this database, owners alternating.
my @seq = (
	[ 'sec_whoami', 'sec_b', '{}' ],
	[ 'sec_mutate', 'sec_a', '{"fail": false}' ],
	[ 'sec_whoami', 'sec_b', '{}' ],
	[ 'sec_mutate', 'sec_c', '{"fail": true}' ],
	[ 'sec_whoami', 'sec_a', '{}' ],
	[ 'sec_whoami', 'sec_c', '{}' ]);
sql('postgres', "SELECT job_engine.pause_queue('default')");
my @seq_ids = map { sql('postgres', "SELECT job_engine.submit('$_->[0]', '$_->[2]')", $_->[1]) } @seq;
sql('postgres', "SELECT job_engine.resume_queue('default')");
my $seq_ids = join(',', @seq_ids);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 6 FROM job_engine.jobs WHERE id IN ($seq_ids) AND state IN $terminal"),
	'the jobs changing settings and the jobs looking at them finish');
is(sql('postgres', "SELECT count(DISTINCT worker_pid) FROM job_engine.attempts WHERE job_id IN ($seq_ids)"),
	'6', 'each ran in an executor of its own: an executor serves one owner');
is( sql('postgres', qq{
SELECT string_agg(j.state || ':' || coalesce(j.result ->> 'user', a.sqlstate), ',' ORDER BY j.id)
  FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id WHERE j.id IN ($seq_ids)}),
	'succeeded:sec_b,succeeded:sec_a,succeeded:sec_b,failed:22023,succeeded:sec_a,succeeded:sec_c',
	'each job runs as its owner, even after a job tried SET ROLE');
my $baseline = sql('postgres', "SELECT concat_ws('|', search_path, statement_timeout, app, work_mem) FROM seen WHERE job_id = $seq_ids[0]");
is( sql('postgres', qq{
SELECT string_agg(who || '|' || concat_ws('|', search_path, statement_timeout, app, work_mem), E'\n' ORDER BY job_id)
  FROM seen WHERE job_id IN ($seq_ids)}),
	join("\n", "sec_b|$baseline", "sec_b|$baseline", "sec_a|$baseline", "sec_c|$baseline"),
	'no setting changed by an attempt (succeeded or failed) is seen by the next job');
unlike($baseline, qr/evil|4321|7MB/, 'the baseline settings are the defaults');

# ===========================================================================
# 4. hostile objects in schema public before CREATE EXTENSION
# ===========================================================================
$node->safe_psql('postgres', 'CREATE DATABASE hostile');

# Functions that the extension could call unqualified, with the signatures
# that would win over pg_catalog's on a search_path with public first.
my @hostile_functions = (
	[ 'now()', 'timestamptz', 'pg_catalog.now()' ],
	[ 'clock_timestamp()', 'timestamptz', 'pg_catalog.clock_timestamp()' ],
	[ 'gen_random_uuid()', 'uuid', 'pg_catalog.gen_random_uuid()' ],
	[ 'format(f text)', 'text', 'pg_catalog.format(f)' ],
	[ 'format(f text, a text)', 'text', 'pg_catalog.format(f, a)' ],
	[ 'format(f text, a anyelement)', 'text', 'pg_catalog.format(f, a)' ],
	[ 'format(f text, a text, b text)', 'text', 'pg_catalog.format(f, a, b)' ],
	[ 'jsonb_build_object(VARIADIC a text[])', 'jsonb', 'pg_catalog.jsonb_build_object(VARIADIC a)' ],
	[ 'json_build_object(VARIADIC a text[])', 'json', 'pg_catalog.json_build_object(VARIADIC a)' ],
	[ 'pg_notify(c text, p text)', 'void', 'pg_catalog.pg_notify(c, p)' ],
	[ 'length(t text)', 'integer', 'pg_catalog.length(t)' ],
	[ '"left"(t text, n integer)', 'text', 'pg_catalog.left(t, n)' ],
	[ '"right"(t text, n integer)', 'text', 'pg_catalog.right(t, n)' ],
	[ 'lower(t text)', 'text', 'pg_catalog.lower(t)' ],
	[ 'replace(t text, a text, b text)', 'text', 'pg_catalog.replace(t, a, b)' ],
	[ 'strpos(t text, s text)', 'integer', 'pg_catalog.strpos(t, s)' ],
	[ 'starts_with(t text, s text)', 'boolean', 'pg_catalog.starts_with(t, s)' ],
	[ 'quote_ident(t text)', 'text', 'pg_catalog.quote_ident(t)' ],
	[ 'array_position(a anyarray, e anyelement)', 'integer', 'pg_catalog.array_position(a, e)' ],
	[ 'cardinality(a anyarray)', 'integer', 'pg_catalog.cardinality(a)' ],
	[ 'array_ndims(a anyarray)', 'integer', 'pg_catalog.array_ndims(a)' ],
	[ 'isfinite(t timestamptz)', 'boolean', 'pg_catalog.isfinite(t)' ],
	[ 'current_setting(n text)', 'text', 'pg_catalog.current_setting(n)' ],
	[ 'set_config(n text, v text, l boolean)', 'text', 'pg_catalog.set_config(n, v, l)' ],
	[ 'pg_has_role(r oid, p text)', 'boolean', 'pg_catalog.pg_has_role(r, p)' ],
	[ 'pg_has_role(u oid, r oid, p text)', 'boolean', 'pg_catalog.pg_has_role(u, r, p)' ],
	[ 'pg_get_userbyid(r oid)', 'name', 'pg_catalog.pg_get_userbyid(r)' ],
	[ 'has_function_privilege(u oid, f oid, p text)', 'boolean',
		'pg_catalog.has_function_privilege(u, f, p)' ],
	[ 'to_jsonb(v anyelement)', 'jsonb', 'pg_catalog.to_jsonb(v)' ],
	[ 'round(v numeric, s integer)', 'numeric', 'pg_catalog.round(v, s)' ],
	[ 'date_part(f text, i interval)', 'double precision', 'pg_catalog.date_part(f, i)' ],
	[ 'date_part(f text, t timestamptz)', 'double precision', 'pg_catalog.date_part(f, t)' ],
	[ 'power(a double precision, b double precision)', 'double precision', 'pg_catalog.power(a, b)' ],
	[ 'random()', 'double precision', 'pg_catalog.random()' ],
	[ 'make_interval(secs double precision)', 'interval', 'pg_catalog.make_interval(secs => secs)' ],
	[ 'pg_sleep(s double precision)', 'void', 'pg_catalog.pg_sleep(s)' ],
	[ 'pg_notification_queue_usage()', 'double precision', 'pg_catalog.pg_notification_queue_usage()' ],
	[ 'current_database()', 'name', 'pg_catalog.current_database()' ],
	[ 'pg_backend_pid()', 'integer', 'pg_catalog.pg_backend_pid()' ],
	[ 'unnest(a anyarray)', 'SETOF anyelement', 'pg_catalog.unnest(a)' ]);
# Operators on built-in types (and on any enum, such as job_state).
my @hostile_operators = (
	[ '=', 'text', 'text', 'boolean' ],
	[ '<>', 'text', 'text', 'boolean' ],
	[ '=', 'bigint', 'bigint', 'boolean' ],
	[ '=', 'integer', 'integer', 'boolean' ],
	[ '<', 'integer', 'integer', 'boolean' ],
	[ '>=', 'integer', 'integer', 'boolean' ],
	[ '=', 'oid', 'oid', 'boolean' ],
	[ '=', 'uuid', 'uuid', 'boolean' ],
	[ '<=', 'timestamptz', 'timestamptz', 'boolean' ],
	[ '=', 'anyenum', 'anyenum', 'boolean' ],
	[ '<>', 'anyenum', 'anyenum', 'boolean' ],
	[ '~', 'text', 'text', 'boolean' ],
	[ '!~', 'text', 'text', 'boolean' ],
	[ '~~', 'text', 'text', 'boolean' ],
	[ '||', 'text', 'text', 'text' ],
	[ '->>', 'jsonb', 'text', 'text' ],
	[ '+', 'integer', 'integer', 'integer' ],
	[ '-', 'timestamptz', 'timestamptz', 'interval' ],
	[ '+', 'timestamptz', 'interval', 'timestamptz' ],
	[ '*', 'interval', 'double precision', 'interval' ]);

my $hostile_sql = q{
CREATE ROLE attacker;
GRANT CREATE ON SCHEMA public TO attacker;
SET ROLE attacker;
CREATE TABLE public.hostile_ran (what text, by_role text);
CREATE SEQUENCE public.hostile_seq;
GRANT INSERT, SELECT ON public.hostile_ran TO PUBLIC;
GRANT USAGE, SELECT ON SEQUENCE public.hostile_seq TO PUBLIC;
-- nextval() is not transactional: it counts calls in rolled back work too.
CREATE FUNCTION public.hostile_note(what text) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.hostile_seq');
    INSERT INTO public.hostile_ran VALUES (what, CURRENT_USER);
END
$$;
CREATE FUNCTION public.hostile_count_step(s bigint) RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN PERFORM public.hostile_note('count(*)'); RETURN s + 1; END $$;
CREATE AGGREGATE public.count(*) (SFUNC = public.hostile_count_step, STYPE = bigint, INITCOND = '0');
-- An implicit cast to a type of the attacker, with an operator on it.
CREATE TYPE public.hostile_t AS (v text);
CREATE FUNCTION public.hostile_t_from_text(t text) RETURNS public.hostile_t LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN PERFORM public.hostile_note('cast text to hostile_t'); RETURN ROW(t)::public.hostile_t; END $$;
CREATE CAST (text AS public.hostile_t) WITH FUNCTION public.hostile_t_from_text(text) AS IMPLICIT;
CREATE FUNCTION public.hostile_t_eq(a public.hostile_t, b public.hostile_t) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.hostile_note('=(hostile_t,hostile_t)'); RETURN a.v = b.v; END $$;
CREATE OPERATOR public.= (LEFTARG = public.hostile_t, RIGHTARG = public.hostile_t,
                          FUNCTION = public.hostile_t_eq);
};
for my $f (@hostile_functions)
{
	my ($sig, $ret, $expr) = @$f;
	(my $name = $sig) =~ s/\(.*//;
	my $body =
		$ret eq 'void' ? "PERFORM $expr; RETURN;"
	  : $ret =~ /^SETOF/ ? "RETURN QUERY SELECT $expr;"
	  : "RETURN $expr;";
	$hostile_sql .= qq{
CREATE FUNCTION public.$sig RETURNS $ret LANGUAGE plpgsql SET search_path = pg_catalog AS \$\$
BEGIN PERFORM public.hostile_note('function $sig'); $body END \$\$;};
}
my $opno = 0;
for my $o (@hostile_operators)
{
	my ($op, $l, $r, $ret) = @$o;
	$opno++;
	$hostile_sql .= qq{
CREATE FUNCTION public.hostile_op_$opno(a $l, b $r) RETURNS $ret LANGUAGE plpgsql
SET search_path = pg_catalog AS \$\$
BEGIN PERFORM public.hostile_note('operator $op($l,$r)'); RETURN a OPERATOR(pg_catalog.$op) b; END \$\$;
CREATE OPERATOR public.$op (LEFTARG = $l, RIGHTARG = $r, FUNCTION = public.hostile_op_$opno);};
}
# Relations named like the extension's, for unqualified references.
for my $rel (qw(_jobs _attempts _events _dependencies handlers queues subscriptions jobs attempts events))
{
	$hostile_sql .= qq{
CREATE VIEW public.$rel AS SELECT 1 AS id FROM (SELECT public.hostile_note('relation $rel')) s;};
}
$hostile_sql .= q{
RESET ROLE;
ALTER DATABASE hostile SET search_path = public, pg_catalog;
-- Handlers of the test (not the attacker), written defensively.
CREATE FUNCTION public.h_ok(a jsonb) RETURNS jsonb LANGUAGE sql
SET search_path = pg_catalog AS $$ SELECT a $$;
CREATE FUNCTION public.h_fail(a jsonb) RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN RAISE EXCEPTION 'nope' USING ERRCODE = '40001'; END $$;
CREATE FUNCTION public.h_parent(a jsonb) RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
    PERFORM job_engine.submit('h_ok', '{"child": true}');
    PERFORM job_engine.publish('evt.child', '{}');
    RETURN job_engine.context();
END
$$;
CREATE FUNCTION public.h_sleep(a jsonb) RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN PERFORM pg_catalog.pg_sleep(20); RETURN a; END $$;
CREATE ROLE hostile_app;
};
sql('hostile', $hostile_sql);
# A supervisor that connected before ALTER DATABASE reconnects with it.
sql('postgres', q{
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = 'hostile' AND backend_type = 'job_engine supervisor'});

# Everything below runs with public first on search_path, as the attacker
# intends; the statements themselves use no operator and no unqualified
# function, so that only the extension could set a trap off.
my $corr1 = '00000000-0000-0000-0000-000000000001';
my $corr2 = '00000000-0000-0000-0000-000000000002';
my $exercise = qq{
CREATE TEMP VIEW handlers AS SELECT 1 AS id FROM (SELECT public.hostile_note('temp handlers')) s;
CREATE TEMP VIEW _jobs AS SELECT 1 AS id FROM (SELECT public.hostile_note('temp _jobs')) s;
CREATE TEMP VIEW queues AS SELECT 1 AS id FROM (SELECT public.hostile_note('temp queues')) s;
CREATE EXTENSION job_engine;
SELECT job_engine.register_handler('h_ok', 'public.h_ok(jsonb)', queue => 'hq');
SELECT job_engine.register_handler('h_comp', 'public.h_ok(jsonb)');
SELECT job_engine.register_handler('h_fail', 'public.h_fail(jsonb)', max_attempts => 2,
        backoff_base => '10 ms', backoff_max => '20 ms', retry_on => ARRAY['40001'],
        compensate_with => 'h_comp');
SELECT job_engine.register_handler('h_parent', 'public.h_parent(jsonb)');
SELECT job_engine.register_handler('h_sleep', 'public.h_sleep(jsonb)', timeout => '30 s');
SELECT job_engine.register_handler('h_tmp', 'public.h_ok(jsonb)');
SELECT job_engine.unregister_handler('h_tmp');
SELECT job_engine.register_c_handler('h_c', '\$libdir/job_engine_example', 'hello_handler');
SELECT job_engine.configure_queue('hq', concurrency => 2, group_commit => 4);
SELECT job_engine.pause_queue('hq');
SELECT job_engine.resume_queue('hq');
SELECT job_engine.subscribe('evt.*', 'h_ok');
SELECT job_engine.subscribe('evt.one', 'h_comp') AS sub2 \\gset
SELECT job_engine.unsubscribe(:sub2);
SELECT job_engine.submit('h_ok', '{"n": 1}', queue => 'hq', priority => 1,
        idempotency_key => 'k1', correlation_id => '$corr1') AS j1 \\gset
SELECT job_engine.submit('h_ok', '{"n": 1}', idempotency_key => 'k1');
SELECT job_engine.submit('h_ok', '{"n": 2}', depends_on => ARRAY[:j1]::bigint[],
        ordering_key => 'o1', correlation_id => '$corr1');
SELECT job_engine.submit_many('h_ok', ARRAY['{"m": 1}', '{"m": 2}']::jsonb[], queue => 'hq');
SELECT job_engine.submit('h_fail', correlation_id => '$corr1') AS jf \\gset
SELECT job_engine.submit('h_parent', correlation_id => '$corr2');
SELECT job_engine.submit('h_c', '{"name": "x"}');
SELECT job_engine.publish('evt.one', '{"x": 1}', correlation_id => '$corr1');
SELECT job_engine.submit('h_ok', run_at => '2100-01-01') AS jd \\gset
SELECT job_engine.submit('h_ok', run_at => '2100-01-01', depends_on => ARRAY[:jd]::bigint[]);
SELECT job_engine.abort(:jd, 'hostile test');
SELECT job_engine.retry(:jd);
SELECT job_engine.reschedule(:jd, '2099-01-01');
SELECT job_engine.run_now(:jd);
SELECT job_engine.configure_queue('hq2', retention => '1 day', failed_retention => '30 days');
SELECT job_engine.wait(:j1, '20 seconds');
SELECT job_engine.wait(:jf, '20 seconds');
SELECT job_engine.submit('h_sleep') AS js \\gset
SELECT pg_catalog.pg_sleep(0.5);
SELECT job_engine.abort(:js, 'stop sleeping');
SELECT job_engine.resubmit(:j1) AS jr \\gset
SELECT job_engine.wait(:jr, '20 seconds');
SELECT * FROM job_engine.trace('$corr1');
SELECT * FROM job_engine.trace('$corr2');
SELECT job_engine.metrics();
SELECT * FROM job_engine.jobs;
SELECT * FROM job_engine.attempts;
SELECT * FROM job_engine.events;
SELECT * FROM job_engine.queue_stats;
SELECT * FROM job_engine.workers;
SELECT * FROM job_engine.handlers;
SELECT * FROM job_engine.queues;
SELECT * FROM job_engine.subscriptions;
SELECT job_engine.context(), job_engine.current_job_id();
SELECT job_engine.purge('99 years');
DO \$\$ BEGIN PERFORM job_engine.schedule('s1', '* * * * *', 'h_ok'); EXCEPTION WHEN OTHERS THEN NULL; END \$\$;
DO \$\$ BEGIN PERFORM job_engine.unschedule('s1'); EXCEPTION WHEN OTHERS THEN NULL; END \$\$;
};
my $t_exercise = time;
sql('hostile', $exercise);
# The same API as an ordinary role.
sql('hostile', q{
SELECT job_engine.submit('h_ok', '{"app": true}') AS ja \gset
SELECT job_engine.wait(:ja, '20 seconds');
SELECT job_engine.submit('h_ok', run_at => '2100-01-01') AS jb \gset
SELECT job_engine.abort(:jb, 'app abort');
SELECT job_engine.publish('evt.app', '{}');
SELECT * FROM job_engine.jobs;
SELECT * FROM job_engine.attempts;
SELECT * FROM job_engine.queue_stats;
SELECT job_engine.metrics();
}, 'hostile_app');
note sprintf('hostile: API exercised in %.1f s', time - $t_exercise);

my $pg = 'SET search_path = pg_catalog;';
ok( poll_sql('hostile', qq{$pg
SELECT count(*) = 0 FROM job_engine._jobs WHERE state NOT IN $terminal}),
	'hostile: every job of the hostile database finishes');
is( sql('hostile', qq{$pg
SELECT string_agg(handler || ':' || state, ',' ORDER BY handler, state)
  FROM (SELECT DISTINCT handler, state::text FROM job_engine._jobs) s}),
	'h_c:succeeded,h_comp:succeeded,h_fail:failed,h_ok:aborted,h_ok:succeeded,h_parent:succeeded,h_sleep:aborted',
	'hostile: the jobs had their expected outcomes (the engine worked)');
is( sql('hostile', qq{$pg
SELECT (SELECT count(*) FROM job_engine._jobs WHERE parent_job_id IS NOT NULL AND compensation_of IS NULL)
       || ' ' || (SELECT count(*) FROM job_engine._events WHERE published_by_job IS NOT NULL)}),
	'1 1', "hostile: the handler's own submit and publish were linked to its job");
is( sql('hostile', qq{$pg
SELECT coalesce(string_agg(what || ' by ' || by_role, ', '), '') FROM public.hostile_ran}),
	'', 'hostile: no planted function, operator, cast or relation ever ran');
is( sql('hostile', qq{$pg
SELECT last_value IS NULL FROM pg_sequences WHERE schemaname = 'public' AND sequencename = 'hostile_seq'}),
	't', 'hostile: not even in work that was rolled back');
# The traps are armed: the same session setup sets them off at once.
sql('hostile', q{SELECT now(), 'a'::text = 'b'::text, format('%s', 'x'::text)});
is( sql('hostile', qq{$pg SELECT string_agg(what, ', ' ORDER BY what) FROM public.hostile_ran}),
	'function format(f text, a text), function now(), operator =(text,text)',
	'hostile: (control) the planted objects do run for unqualified names');

# ===========================================================================
# 5. a schema named job_engine created in advance by an ordinary role
# ===========================================================================
$node->safe_psql('postgres', q{
CREATE DATABASE squat;
CREATE ROLE mallory LOGIN;
GRANT CREATE ON DATABASE squat TO mallory;
});
sql('squat', q{
CREATE TABLE public.planted_ran (fn text, by_role text, super boolean);
GRANT INSERT, SELECT ON public.planted_ran TO PUBLIC;
SET ROLE mallory;
CREATE SCHEMA job_engine;
});
my ($rc, $out, $err) = (0, '', '');
$rc = $node->psql('squat', 'CREATE EXTENSION job_engine', stdout => \$out, stderr => \$err);
note "squat: CREATE EXTENSION with schema job_engine owned by mallory: "
  . ($rc == 0 ? 'accepted' : "refused: $err");
if ($rc == 0)
{
	ok( $node->poll_query_until('postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 'squat' AND backend_type = 'job_engine executor'}),
		'squat: an executor serves the database');
	# mallory owns the schema: it may rename it and plant look-alikes of the
	# internal functions under the old name.
	my $planted = q{
SET ROLE mallory;
ALTER SCHEMA job_engine RENAME TO je_moved;
CREATE SCHEMA job_engine;
CREATE FUNCTION job_engine.planted(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_ran
    SELECT fn, current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    BEGIN
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
END
$$;
CREATE FUNCTION job_engine_internal._recover_crashed(dead_pids integer[]) RETURNS integer
LANGUAGE plpgsql AS $$ BEGIN PERFORM job_engine.planted('_recover_crashed'); RETURN 0; END $$;
CREATE FUNCTION job_engine_internal._purge_expired(retention_s integer) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN PERFORM job_engine.planted('_purge_expired'); RETURN 0; END $$;
CREATE FUNCTION job_engine_internal._next_due_in() RETURNS double precision
LANGUAGE plpgsql AS $$ BEGIN PERFORM job_engine.planted('_next_due_in'); RETURN NULL; END $$;
CREATE FUNCTION job_engine_internal._claim(pid integer)
RETURNS TABLE (job_id bigint, attempt integer, fn text, owner oid,
               timeout_ms integer, args jsonb, handler text, queue text,
               correlation_id uuid, parent_job_id bigint, event_id bigint,
               library text, symbol text)
LANGUAGE plpgsql AS $$ BEGIN PERFORM job_engine.planted('_claim'); END $$;
};
	sql('squat', $planted);
	# Any executor exit (a FATAL handler, an OOM kill) makes the supervisor
	# recover its attempts, and a replacement executor starts.
	my $old = sql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE datname = 'squat' AND backend_type = 'job_engine executor'");
	sql('postgres', "SELECT pg_terminate_backend($old)");
	ok( $node->poll_query_until('postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE datname = 'squat' AND backend_type = 'job_engine executor' AND pid <> $old}),
		'squat: a replacement executor started');
	usleep(1_000_000);
}
is( sql('squat', "SELECT coalesce(string_agg(fn || ' as ' || by_role || ' super=' || super, ', '), '') FROM planted_ran"),
	'', 'squat: no function planted by the schema owner runs in the workers');
is(sql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'"),
	'f', 'squat: the role that created the schema did not become superuser');
sql('postgres', 'ALTER ROLE mallory NOSUPERUSER');

# ===========================================================================
# 6. pg_dump and pg_restore
# ===========================================================================
$node->safe_psql('postgres', 'CREATE DATABASE dumpsrc');
sql('dumpsrc', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION public.d_ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
CREATE FUNCTION public.d_bad(a jsonb) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'bad %', a ->> 'n' USING ERRCODE = '40001', HINT = 'a hint'; END $$;
SELECT job_engine.register_handler('d_ok', 'public.d_ok(jsonb)', queue => 'dq', timeout => '1 min');
SELECT job_engine.register_handler('d_bad', 'public.d_bad(jsonb)', max_attempts => 2,
        backoff_base => '10 ms', backoff_max => '10 ms', retry_on => ARRAY['40001']);
-- Runs (sleeps) in the source only: the dump catches it running.
CREATE FUNCTION public.d_slow(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF current_database() = 'dumpsrc' THEN PERFORM pg_sleep(300); END IF;
    RETURN a;
END $$;
SELECT job_engine.register_handler('d_slow', 'public.d_slow(jsonb)', queue => 'dslow', timeout => '10 min');
SELECT job_engine.configure_queue('dq', concurrency => 3, group_commit => 2);
SELECT job_engine.configure_queue('default', concurrency => 7);
SELECT job_engine.subscribe('order.*', 'd_ok');
SELECT job_engine.publish('order.created', '{"order": 1}');
SELECT job_engine.submit('d_ok', '{"n": 1}');
SELECT job_engine.submit('d_bad', '{"n": 2}');
SELECT job_engine.submit('d_ok', '{"n": 3}', run_at => now() + interval '1 day') AS delayed \gset
SELECT job_engine.submit('d_ok', '{"n": 4}', run_at => now() + interval '1 day',
                         depends_on => ARRAY[:delayed]::bigint[]);
SELECT job_engine.submit('d_ok', '{"n": 5}', run_at => now() + interval '1 day') AS doomed \gset
SELECT job_engine.abort(:doomed, 'changed my mind');
});
sql('dumpsrc', "SELECT job_engine.submit('d_ok', '{\"n\": 6}')", 'sec_a');
ok( $node->poll_query_until('dumpsrc', q{
SELECT count(*) = 0 FROM job_engine.jobs WHERE state NOT IN ('succeeded', 'failed', 'aborted')
   AND run_at < now() + interval '1 hour'}),
	'dump: the due jobs of the source database finished');
# Then one that runs (sleeps) while the dump is taken; it holds the only executor.
my $slow = sql('dumpsrc', q{SELECT job_engine.submit('d_slow', '{"n": 7}')});
ok( $node->poll_query_until('dumpsrc', "SELECT state = 'running' FROM job_engine._jobs WHERE id = $slow"),
	'dump: one job is running while the dump is taken');

my %snapshot = (
	jobs => qq{SELECT id, handler, queue, state, priority, attempts, max_attempts, args, result,
                     run_at, created_at, started_at, finished_at, owner, correlation_id,
                     parent_job_id, event_id, depends_on, abort_reason, last_error
                FROM job_engine._jobs WHERE id <> $slow ORDER BY id},
	attempts => qq{SELECT job_id, attempt, outcome, started_at, finished_at, worker_pid,
                         sqlstate, message, detail, hint, context
                    FROM job_engine._attempts WHERE job_id <> $slow ORDER BY job_id, attempt},
	handlers => q{SELECT name, fn::text, library, symbol, queue, max_attempts, backoff_base,
                         backoff_max, timeout, retry_on, compensate_with, owner
                    FROM job_engine.handlers ORDER BY name},
	events => q{SELECT id, event_type, payload, correlation_id, publisher, published_at
                  FROM job_engine._events ORDER BY id},
	subscriptions => q{SELECT id, event_type, handler, owner FROM job_engine.subscriptions ORDER BY id},
	queues => q{SELECT name, paused, concurrency, group_commit FROM job_engine.queues
                 WHERE name <> 'default' ORDER BY name},
	dependencies => q{SELECT job_id, depends_on FROM job_engine._dependencies ORDER BY 1, 2});
my %before = map { $_ => sql('dumpsrc', $snapshot{$_}) } keys %snapshot;
like($before{attempts}, qr/\|2\|failed\|/, 'dump: the source has a failed job with 2 attempts');

my $dumpfile = PostgreSQL::Test::Utils::tempdir() . '/dumpsrc.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dumpfile, '-d', 'dumpsrc' ], 'dump: pg_dump -Fc');

# A plain restore, into a database without workers: COPY may load jobs in
# any state, and _attempts has no foreign key to order the tables by.
$node->safe_psql('postgres', 'CREATE DATABASE dumpplain');
my ($plain_out, $plain_err) = ('', '');
my $plain_ok = IPC::Run::run([ 'pg_restore', '-d', $node->connstr('dumpplain'), $dumpfile ],
	'>', \$plain_out, '2>', \$plain_err);
ok($plain_ok, 'dump: a plain pg_restore succeeds') or diag($plain_err);
is( sql('dumpplain', 'SELECT count(*) FROM job_engine._jobs'),
	sql('dumpsrc', 'SELECT count(*) FROM job_engine._jobs'),
	'dump: the plain restore has every job');

# And into a database with workers.
$node->safe_psql('postgres', 'CREATE DATABASE dumpdst');
$node->command_ok([ 'pg_restore', '-d', 'dumpdst', $dumpfile ], 'dump: pg_restore into a served database');
for my $what (sort keys %snapshot)
{
	is(sql('dumpdst', $snapshot{$what}), $before{$what}, "dump: $what are restored as they were");
}
is( sql('dumpdst', "SELECT concurrency FROM job_engine.queues WHERE name = 'default'"),
	'7', 'dump: the configuration of the default queue is restored too');

my $max_job = sql('dumpsrc', 'SELECT max(id) FROM job_engine._jobs');
my $max_event = sql('dumpsrc', 'SELECT max(id) FROM job_engine._events');
my $new_job = sql('dumpdst', q{SELECT job_engine.submit('d_ok', '{"after": "restore"}')});
cmp_ok($new_job, '>', $max_job, "dump: a new submit gets an id ($new_job) above the restored ones");
my $new_event = sql('dumpdst', q{SELECT job_engine.publish('order.shipped', '{}')});
cmp_ok($new_event, '>', $max_event, 'dump: so does a new event');
ok( $node->poll_query_until('dumpdst', qq{
SELECT count(*) = 2 FROM job_engine.jobs
 WHERE (id = $new_job OR event_id = $new_event) AND state = 'succeeded'}),
	'dump: the restored database runs new jobs, subscriptions included');
is( sql('dumpdst', q{
SELECT string_agg(state::text, ',' ORDER BY id) FROM job_engine._jobs
 WHERE run_at > now() + interval '1 hour'}),
	'created,created,aborted', 'dump: the delayed jobs still wait');

# The job that was running when the dump was taken has no worker here: the
# supervisor records that attempt crashed and the retry policy runs it again.
ok( $node->poll_query_until('dumpdst', "SELECT state = 'succeeded' FROM job_engine._jobs WHERE id = $slow"),
	'dump: the job restored as running is recovered and runs again');
is( sql('dumpdst', "SELECT string_agg(attempt || ' ' || outcome, ', ' ORDER BY attempt)
                      FROM job_engine._attempts WHERE job_id = $slow"),
	'1 crashed, 2 succeeded', 'dump: its restored attempt is recorded crashed');
is( sql('dumpplain', "SELECT state FROM job_engine._jobs WHERE id = $slow"),
	'running', 'dump: without workers it stays as it was restored');
sql('dumpsrc', "SELECT job_engine.abort($slow, 'dump test done')");

$node->stop;
done_testing();

# An executor serves one owner in its lifetime (docs/architecture.md, "7.
# Security model").  One executor slot (max_workers = 1), so that the jobs of
# a sequence run one after the other in submission order.
#
#  1. Owners alternating: each job runs in an executor of its own, started
#     at once after the last one retired (not after the usual 1 s restart
#     delay), as its owner's session user.
#  2. A group never mixes owners, and a group whose queue's head is blocked
#     still takes the other owners' jobs behind it.
#  3. An attempt in a group that loads a library (dblink) ends the group:
#     the jobs not started go back to waiting, run later in a fresh
#     executor, with one attempt each, and see nothing of it.
#  4. The bootstrap superuser's own ALTER ROLE settings, which its
#     executors' connections apply, do not reach other owners' jobs; a
#     database setting reaches every job.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('executor_per_owner', max_workers => 1);

my $terminal = "('succeeded', 'failed', 'aborted')";

sub sql
{
	my ($query, $role) = @_;
	$query = "SET ROLE $role;\n$query" if $role;
	return $node->safe_psql('postgres', $query);
}

sub wait_terminal
{
	my @ids = @_;
	my $list = join(',', @ids);
	return $node->poll_query_until('postgres',
		"SELECT count(*) = " . scalar(@ids) . " FROM job_engine.jobs WHERE id IN ($list) AND state IN $terminal");
}

# Submits [HANDLER, ROLE, ARGS] jobs to the paused QUEUE, resumes it, waits
# for them; returns their ids.
sub run_in_order
{
	my ($queue, @jobs) = @_;
	sql("SELECT job_engine.pause_queue('$queue')");
	my @ids = map { sql("SELECT job_engine.submit('$_->[0]', '$_->[2]')", $_->[1]) } @jobs;
	sql("SELECT job_engine.resume_queue('$queue')");
	ok(wait_terminal(@ids), 'jobs ' . join(',', @ids) . ' finish');
	return @ids;
}

my $bootstrap = sql('SELECT rolname FROM pg_roles WHERE oid = 10');

sql(q{
CREATE EXTENSION job_engine;
CREATE EXTENSION dblink;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE FUNCTION public.who(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('current_user', current_user::text, 'session_user', session_user::text,
                              'pid', pg_backend_pid(), 'work_mem', current_setting('work_mem'),
                              'search_path', current_setting('search_path'),
                              'dblink', coalesce(array_to_string(public.dblink_get_connections(), ','), ''))
$$;
CREATE FUNCTION public.who_plain(a jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('current_user', current_user::text, 'session_user', session_user::text,
                              'pid', pg_backend_pid(), 'work_mem', current_setting('work_mem'),
                              'search_path', current_setting('search_path'),
                              'maintenance_work_mem', current_setting('maintenance_work_mem'))
$$;
CREATE FUNCTION public.dbl_open(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.dblink_connect('left_open', a ->> 'conn');
    RETURN jsonb_build_object('pid', pg_backend_pid());
END
$$;
CREATE FUNCTION public.nothing(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('who', 'public.who_plain(jsonb)', max_attempts => 1);
SELECT job_engine.register_handler('g_who', 'public.who_plain(jsonb)', queue => 'g', max_attempts => 1);
SELECT job_engine.register_handler('g_dbl_list', 'public.who(jsonb)', queue => 'g', max_attempts => 1);
SELECT job_engine.register_handler('g_dbl_open', 'public.dbl_open(jsonb)', queue => 'g', max_attempts => 1);
SELECT job_engine.register_handler('never', 'public.nothing(jsonb)', queue => 'parked');
SELECT job_engine.register_handler('g_after', 'public.nothing(jsonb)', queue => 'g');
SELECT job_engine.configure_queue('g', group_commit => 8);
SELECT job_engine.configure_queue('parked');
SELECT job_engine.pause_queue('parked');
});

# ===========================================================================
# 1. owners alternating
# ===========================================================================
my @alt = run_in_order('default', map { [ 'who', $_ % 2 ? 'bob' : 'alice', '{}' ] } 1 .. 12);
is(sql("SELECT count(*) FROM job_engine.jobs WHERE id IN (" . join(',', @alt) . ") AND state = 'succeeded'"),
	'12', 'the jobs of alternating owners all succeed');
is(sql("SELECT count(DISTINCT result ->> 'pid') FROM job_engine.jobs WHERE id IN (" . join(',', @alt) . ')'),
	'12', 'each runs in an executor of its own: an executor serves one owner');
is(sql("SELECT count(*) FROM job_engine.jobs WHERE id IN (" . join(',', @alt)
		  . ") AND result ->> 'current_user' <> owner::text"),
	'0', 'each runs as its owner');
# Server timestamps: from one job's end to the start of the next, whose
# executor the supervisor started when the last one retired.
my $gap = sql(qq{
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.started_at - a.finished_at))
  FROM job_engine.attempts a JOIN job_engine.attempts b ON b.job_id = a.job_id + 1
 WHERE a.job_id IN (@{[ join(',', @alt[0 .. 10]) ]})});
cmp_ok($gap, '<', 0.5, "a retired executor's replacement starts at once (median gap ${gap}s, not the 1 s restart delay)");

# ===========================================================================
# 2. a group has one owner
# ===========================================================================
my @mixed = run_in_order('g', map { [ 'g_who', $_ % 3 ? 'alice' : 'bob', '{}' ] } 1 .. 9);
is(sql("SELECT count(*) FROM job_engine.jobs WHERE id IN (" . join(',', @mixed) . ") AND state = 'succeeded'"),
	'9', 'the group-commit jobs of two owners all succeed');
is( sql(qq{
SELECT count(*) FROM (SELECT result ->> 'pid' FROM job_engine.jobs WHERE id IN (@{[ join(',', @mixed) ]})
                       GROUP BY 1 HAVING count(DISTINCT owner) > 1) x}),
	'0', 'no executor ran jobs of two owners: a group never mixes them');
is(sql("SELECT count(*) FROM job_engine.jobs WHERE id IN (" . join(',', @mixed)
		  . ") AND result ->> 'session_user' <> owner::text"),
	'0', "session_user in each group job is its owner");

# alice's job at the head of queue g waits for a job that never runs; bob's
# jobs behind it must not wait with it.
my $never = sql("SELECT job_engine.submit('never', '{}')", 'alice');
sql("SELECT job_engine.pause_queue('g')");
my $blocked = sql("SELECT job_engine.submit('g_after', '{}', depends_on => ARRAY[$never]::bigint[])", 'alice');
my @behind = map { sql("SELECT job_engine.submit('g_who', '{}')", 'bob') } 1 .. 3;
sql("SELECT job_engine.resume_queue('g')");
ok(wait_terminal(@behind), "bob's jobs behind alice's blocked job at the head of the group queue finish");
is(sql("SELECT state FROM job_engine.jobs WHERE id = $blocked"), 'created', "alice's blocked job still waits");
sql("SELECT job_engine.abort($blocked, 'done'), job_engine.abort($never, 'done')");

# ===========================================================================
# 3. a library loaded in a group ends the group
# ===========================================================================
my $conn = $node->connstr('postgres');
$conn =~ s/'//g;
# (A superuser's: dblink wants a password from other roles.)
my @lib = run_in_order('g', [ 'g_dbl_open', undef, qq({"conn": "$conn"}) ],
	map { [ 'g_dbl_list', undef, '{}' ] } 1 .. 3);
is(sql("SELECT string_agg(state || ' ' || attempts, ',' ORDER BY id) FROM job_engine.jobs WHERE id IN ("
		  . join(',', @lib) . ')'),
	'succeeded 1,succeeded 1,succeeded 1,succeeded 1',
	'the group that loaded a library: every job succeeds with one attempt');
is(sql("SELECT count(*) FROM job_engine.attempts WHERE job_id IN (" . join(',', @lib) . ") AND outcome <> 'succeeded'"),
	'0', 'no attempt of the jobs given back is recorded (crashed or otherwise)');
is(sql("SELECT string_agg(result ->> 'dblink', ',') FROM job_engine.jobs WHERE id IN ("
		  . join(',', @lib[1 .. 3]) . ')'),
	',,', "the group's later jobs see no dblink connection left by the first");
is(sql("SELECT count(*) FROM job_engine.jobs WHERE id IN (" . join(',', @lib[1 .. 3])
		  . ") AND result ->> 'pid' = (SELECT result ->> 'pid' FROM job_engine.jobs WHERE id = $lib[0])"),
	'0', 'none of them ran in the process that loaded the library');

# ===========================================================================
# 4. the bootstrap superuser's own role settings
# ===========================================================================
sql(qq{
ALTER ROLE "$bootstrap" SET work_mem = '9MB';
ALTER ROLE "$bootstrap" IN DATABASE postgres SET search_path = boot_s, public;
ALTER DATABASE postgres SET maintenance_work_mem = '77MB';
});
# New executors: the settings are applied when a connection starts.
sql("SELECT pg_terminate_backend(pid) FROM job_engine.workers");
my @boot = run_in_order('default', [ 'who', 'alice', '{}' ], [ 'who', $bootstrap, '{}' ], [ 'who', 'bob', '{}' ]);
is(field_pair($boot[0]), '4MB | "$user", public',
	"the bootstrap superuser's ALTER ROLE settings do not reach alice's job");
is(sql("SELECT result ->> 'maintenance_work_mem' FROM job_engine.jobs WHERE id = $boot[0]"),
	'77MB', "the database's settings do");
is(field_pair($boot[1]), '9MB | boot_s, public', "the bootstrap superuser's own job has them");
is(field_pair($boot[2]), '4MB | "$user", public', "nor bob's job after it");
sql("ALTER ROLE \"$bootstrap\" RESET ALL; ALTER ROLE \"$bootstrap\" IN DATABASE postgres RESET ALL;"
	  . ' ALTER DATABASE postgres RESET ALL;');

sub field_pair
{
	my ($id) = @_;
	return sql("SELECT (result ->> 'work_mem') || ' | ' || (result ->> 'search_path') FROM job_engine.jobs WHERE id = $id");
}

done_testing();

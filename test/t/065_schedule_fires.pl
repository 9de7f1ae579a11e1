# pg_cron itself fires a schedule (README "Schedules"), on a cluster that
# listens on a Unix socket only: with cron.use_background_workers = on,
# pg_cron runs the stored command in a background worker as the schedule's
# role, and the handler's job is created, owned by that role, names the
# schedule, and runs; the schedules view shows the run pg_cron recorded.
# A schedule made in pg_cron's database for another database (where
# job_engine is installed too) fires there.
# pg_cron 1.5 and later take '2 seconds'; 1.4 fires at the next minute.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('schedule_fires', pg_cron => 1,
	databases => 'postgres,appdb',
	extra_conf => "cron.use_background_workers = on\n");

# The handler tick, which records each job it runs, in the current database.
my $tick = q{
CREATE EXTENSION job_engine;
CREATE TABLE public.fired (job_id bigint, by_role text);
GRANT INSERT ON public.fired TO app;
CREATE FUNCTION public.tick(a jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ INSERT INTO public.fired VALUES (job_engine.current_job_id(), current_user) RETURNING a $$;
REVOKE ALL ON FUNCTION public.tick(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tick(jsonb) TO app;
SELECT job_engine.register_handler('tick', 'public.tick(jsonb)');
};
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_cron;
CREATE ROLE app LOGIN;
CREATE DATABASE appdb;
});
$node->safe_psql('postgres', $tick);
# The same handler in appdb, the database the second schedule runs in.
$node->safe_psql('appdb', $tick);

my $seconds = $node->safe_psql('postgres',
	q{SELECT extversion !~ '^(0|1\.[0-4])(\D|$)' FROM pg_extension WHERE extname = 'pg_cron'}) eq 't';
my $cron = $seconds ? '2 seconds' : '* * * * *';
$node->safe_psql('postgres',
	"SET ROLE app; SELECT job_engine.schedule('ticking', '$cron', 'tick', '{\"from\": \"cron\"}')");
$node->safe_psql('postgres',
	"SET ROLE app; SELECT job_engine.schedule('ticking there', '$cron', 'tick', '{\"from\": \"postgres\"}', database => 'appdb')");

# Bounded: pg_cron 1.4 fires at the start of the next minute.
ok($node->poll_query_until('postgres', q{
SELECT EXISTS (SELECT 1 FROM job_engine.jobs
                WHERE handler = 'tick' AND state = 'succeeded')}),
	"pg_cron fired the schedule ($cron) and its job succeeded");
is($node->safe_psql('postgres', q{
SELECT DISTINCT j.owner || ' ' || (j.args ->> 'from') || ' ' || f.by_role
  FROM job_engine.jobs j JOIN public.fired f ON f.job_id = j.id
 WHERE j.handler = 'tick' AND j.state = 'succeeded'}),
	'app cron app', 'the job belongs to the role that scheduled it, has its args, and ran as it');
is($node->safe_psql('postgres', q{
SELECT count(*) > 0 AND bool_and(d.status = 'succeeded')
  FROM cron.job_run_details d JOIN cron.job c USING (jobid)
 WHERE c.jobname = 'ticking' AND d.status <> 'running'}),
	't', 'pg_cron recorded its runs as succeeded');
is($node->safe_psql('postgres', q{
SELECT count(*) || ' ' || bool_and(schedule = 'ticking') FROM job_engine.jobs WHERE handler = 'tick'}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM job_engine.jobs WHERE handler = 'tick'}) . ' true',
	'every job it submitted names the schedule');
ok($node->poll_query_until('postgres', q{
SELECT last_run_status = 'succeeded' AND last_run_finished_at IS NOT NULL
  FROM job_engine.schedules WHERE name = 'ticking'}),
	"the schedules view shows pg_cron's last run as succeeded");

ok($node->poll_query_until('appdb', q{
SELECT EXISTS (SELECT 1 FROM job_engine.jobs
                WHERE handler = 'tick' AND state = 'succeeded' AND schedule = 'ticking there')}),
	"pg_cron fired the schedule for appdb there, and its job succeeded");
is($node->safe_psql('appdb', q{
SELECT DISTINCT j.owner || ' ' || (j.args ->> 'from') || ' ' || f.by_role
  FROM job_engine.jobs j JOIN public.fired f ON f.job_id = j.id
 WHERE j.handler = 'tick' AND j.state = 'succeeded'}),
	'app postgres app', "... owned by app, with the schedule's args, run as app");
# pg_cron records the run's end in a transaction of its own after the
# command: it may come after the job has run.
ok($node->poll_query_until('postgres', q{
SELECT count(*) > 0 AND bool_and(d.status = 'succeeded')
  FROM cron.job_run_details d JOIN cron.job c USING (jobid)
 WHERE c.jobname = 'ticking there' AND d.status <> 'running'}),
	'pg_cron recorded its runs in appdb as succeeded');
is($node->safe_psql('postgres', q{SET ROLE app;
SELECT string_agg(name || ' ' || database, ', ' ORDER BY name) FROM job_engine.schedules}),
	'ticking postgres, ticking there appdb', 'app sees both its schedules in the view');

$node->safe_psql('postgres', "SET ROLE app; SELECT job_engine.unschedule('ticking')");
$node->safe_psql('postgres', "SET ROLE app; SELECT job_engine.unschedule('ticking there')");
done_testing();

# pg_cron itself fires a schedule (README "Schedules"), on a cluster that
# listens on a Unix socket only: with cron.use_background_workers = on,
# pg_cron runs the stored command in a background worker as the schedule's
# role, and the handler's job is created, owned by that role, and runs.
# pg_cron 1.5 and later take '2 seconds'; 1.4 fires at the next minute.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('schedule_fires', pg_cron => 1,
	extra_conf => "cron.use_background_workers = on\n");

$node->safe_psql('postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION job_engine;
CREATE ROLE app LOGIN;
CREATE TABLE public.fired (job_id bigint, by_role text);
GRANT INSERT ON public.fired TO app;
CREATE FUNCTION public.tick(a jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ INSERT INTO public.fired VALUES (job_engine.current_job_id(), current_user) RETURNING a $$;
REVOKE ALL ON FUNCTION public.tick(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tick(jsonb) TO app;
SELECT job_engine.register_handler('tick', 'public.tick(jsonb)');
});

my $seconds = $node->safe_psql('postgres',
	q{SELECT extversion !~ '^(0|1\.[0-4])(\D|$)' FROM pg_extension WHERE extname = 'pg_cron'}) eq 't';
my $cron = $seconds ? '2 seconds' : '* * * * *';
$node->safe_psql('postgres',
	"SET ROLE app; SELECT job_engine.schedule('ticking', '$cron', 'tick', '{\"from\": \"cron\"}')");

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

$node->safe_psql('postgres', "SET ROLE app; SELECT job_engine.unschedule('ticking')");
done_testing();

# The engine's own transactions do not depend on the session defaults meant
# for users (issue 13, item 7): with default_transaction_read_only = on,
# default_transaction_isolation = serializable, a tiny lock_timeout and
# synchronous_commit = off set for the whole server, the supervisor and
# executors keep running (no restart, no error in the log) and jobs run,
# read-write; a handler still sees the server's settings as its own.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node('engine_transactions', max_workers => 2);

# Every session of the test turns read-only off for itself.
sub sql
{
	my ($query) = @_;
	return $node->safe_psql('postgres', "SET default_transaction_read_only = off;\n$query");
}

sub workers
{
	return sql(q{
SELECT string_agg(backend_type || ' ' || pid, ', ' ORDER BY backend_type, pid)
  FROM pg_stat_activity WHERE backend_type IN ('job_engine supervisor', 'job_engine executor')});
}

sql(q{
CREATE EXTENSION job_engine;
CREATE TABLE public.done (job_id bigint);
-- A first row gives the table its page now: with lock_timeout = 1ms for
-- every session, two handlers extending an empty table at once could time
-- out on the relation extension lock, as any session of the owner would.
INSERT INTO public.done VALUES (0);
CREATE FUNCTION public.write_down(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.done VALUES (job_engine.current_job_id());
    RETURN jsonb_build_object('read_only', current_setting('default_transaction_read_only'),
                              'isolation', current_setting('default_transaction_isolation'),
                              'lock_timeout', current_setting('lock_timeout'));
END
$$;
SELECT job_engine.register_handler('write_down', 'public.write_down(jsonb)', max_attempts => 1);
});
ok($node->poll_query_until('postgres', 'SELECT count(*) = 2 FROM job_engine.workers'), 'two executors run');
my $before = workers();

my $log_offset = -s $node->logfile;
sql(q{
ALTER SYSTEM SET default_transaction_read_only = on;
ALTER SYSTEM SET default_transaction_isolation = 'serializable';
ALTER SYSTEM SET lock_timeout = '1ms';
ALTER SYSTEM SET synchronous_commit = off;
SELECT pg_reload_conf();
});
ok($node->poll_query_until('postgres', 'SHOW default_transaction_read_only', 'on'), 'the server is read-only by default');

my $ids = sql("SELECT string_agg(job_engine.submit('write_down', '{}')::text, ',') FROM generate_series(1, 20)");
# Bounded: on a failure the workers restart every second and nothing ends.
my $deadline = time + 30;
my $finished;
while (time < $deadline)
{
	$finished = sql("SELECT count(*) FROM job_engine.jobs WHERE id IN ($ids)"
		  . " AND state IN ('succeeded', 'failed', 'aborted')");
	last if $finished == 20;
	usleep(100_000);
}
is(sql("SELECT count(*) FROM job_engine.jobs WHERE id IN ($ids) AND state = 'succeeded'"), '20', 'the jobs all succeed')
  or diag sql("SELECT string_agg(id || ' ' || state || ' ' || coalesce(last_error, ''), E'\\n') FROM job_engine.jobs WHERE id IN ($ids) AND state <> 'succeeded'");
is(sql("SELECT count(*) FROM public.done WHERE job_id <> 0"), '20', 'their handlers wrote, read-only default or not');
is(sql("SELECT DISTINCT concat_ws(' | ', result ->> 'read_only', result ->> 'isolation', result ->> 'lock_timeout')"
		  . " FROM job_engine.jobs WHERE id IN ($ids)"),
	'on | serializable | 1ms', "a handler sees the server's defaults as a session of its owner would");

# Watch the workers for a while: none may restart.
my %seen;
my $until = time + 3;
while (time < $until)
{
	$seen{ workers() }++;
	usleep(100_000);
}
is(join("\n", sort keys %seen), $before, 'the supervisor and executors never restarted');
my $log = slurp_file($node->logfile, $log_offset);
my @bad = grep { /ERROR|FATAL|exited with exit code/ && !/statement:/ } split /\n/, $log;
is(scalar(@bad), 0, 'no worker logged an error') or diag join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);

sql(q{
ALTER SYSTEM RESET ALL;
SELECT pg_reload_conf();
});

done_testing();

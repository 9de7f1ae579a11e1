# JobEngineNode: the cluster the TAP tests in test/t run job_engine in.
#
# Every test starts its own PostgreSQL::Test::Cluster with job_engine
# preloaded and the same base settings.  new_node() makes that node, so that
# a test states only what it sets differently;
# create_extension_with_noop_handler() creates the extension and a handler
# whose jobs only have to run; job_succeeds() runs a job to its success;
# slow_handler_sql() is the interruptible handler of the tests that break
# into running attempts.
#
# The Makefile's installcheck-tap runs prove with -I test/t, so a test loads
# this module with a plain `use JobEngineNode;`.  PostgreSQL::Test::Cluster
# runs the binaries first in PATH, which that target sets to those of the
# installation PG_CONFIG names.
package JobEngineNode;

use strict;
use warnings;

use Carp;
use PostgreSQL::Test::Cluster;

# new_node(NAME, OPTION => VALUE, ...): a new node, initialized, configured
# and started.  Its postgresql.conf gets
#
#   shared_preload_libraries = 'job_engine'     (',pg_cron' added by pg_cron)
#   cron.database_name = 'postgres'             (only with pg_cron)
#   job_engine.databases = DATABASES            (default 'postgres')
#   job_engine.max_workers = MAX_WORKERS        (only when given)
#   job_engine.poll_interval = 200ms
#   max_worker_processes = MAX_WORKER_PROCESSES (default 16)
#
# and then the lines of extra_conf, as given.  allows_streaming => 1 makes
# a primary that a standby can be made from (init_from_backup).  The extension itself is not
# created: each test creates it along with its own schema.
sub new_node
{
	my ($name, %opts) = @_;
	my %known = map { $_ => 1 }
	  qw(pg_cron databases max_workers max_worker_processes extra_conf allows_streaming);
	for my $opt (sort keys %opts)
	{
		croak "new_node: unknown option '$opt'" unless $known{$opt};
	}

	my $conf = '';
	if ($opts{pg_cron})
	{
		$conf .= "shared_preload_libraries = 'job_engine,pg_cron'\n";
		$conf .= "cron.database_name = 'postgres'\n";
	}
	else
	{
		$conf .= "shared_preload_libraries = 'job_engine'\n";
	}
	$conf .= "job_engine.databases = '" . ($opts{databases} // 'postgres') . "'\n";
	$conf .= "job_engine.max_workers = $opts{max_workers}\n"
	  if defined $opts{max_workers};
	$conf .= "job_engine.poll_interval = 200ms\n";
	$conf .= 'max_worker_processes = ' . ($opts{max_worker_processes} // 16) . "\n";
	$conf .= $opts{extra_conf} // '';

	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => $opts{allows_streaming} // 0);
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	return $node;
}

# create_extension_with_noop_handler(NODE, DB, HANDLER, OPTION => VALUE, ...):
# creates job_engine in database DB and the handler HANDLER, for the tests
# whose jobs only have to run: its function HANDLER(jsonb) returns its
# arguments and does nothing else.  The options are those of
# job_engine.register_handler(), each VALUE passed as a string literal
# (queue => 'q' registers it for queue q).  The test creates the rest of
# its schema after.
sub create_extension_with_noop_handler
{
	my ($node, $db, $handler, %opts) = @_;
	croak "create_extension_with_noop_handler: handler name '$handler' is not a plain identifier"
	  unless $handler =~ /^[a-z_][a-z0-9_]*$/;
	my $register = "'$handler', '$handler(jsonb)'";
	for my $opt (sort keys %opts)
	{
		croak "create_extension_with_noop_handler: option '$opt' is not a plain identifier"
		  unless $opt =~ /^[a-z_]+$/;
		(my $value = $opts{$opt}) =~ s/'/''/g;
		$register .= ", $opt => '$value'";
	}
	return $node->safe_psql($db, qq{
CREATE EXTENSION job_engine;
CREATE FUNCTION $handler(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT a \$\$;
SELECT job_engine.register_handler($register);
});
}

# job_succeeds(NODE, DB, HANDLER, NAME): submits a job of HANDLER with the
# arguments '{}' in database DB and polls until it has succeeded, one test
# named "NAME: a job in DB succeeds".
sub job_succeeds
{
	my ($node, $db, $handler, $name) = @_;
	my $id = $node->safe_psql($db, "SELECT job_engine.submit('$handler', '{}')");
	return Test::More::ok(
		$node->poll_query_until(
			$db, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id"),
		"$name: a job in $db succeeds");
}

# claim_index_reads(NODE, DB): one claim (job_engine_internal._claim(),
# rolled back) in database DB; returns the number of jobs it claimed and
# the entries of jobs_claim_idx it read (index entries returned, in the
# claiming transaction's statistics).
sub claim_index_reads
{
	my ($node, $db) = @_;
	my $out = $node->safe_psql($db, q{
BEGIN;
CREATE TEMP TABLE r AS SELECT pg_stat_get_xact_tuples_returned('job_engine.jobs_claim_idx'::regclass) AS n;
SELECT count(*) FROM job_engine_internal._claim(pg_backend_pid());
SELECT pg_stat_get_xact_tuples_returned('job_engine.jobs_claim_idx'::regclass) - n FROM r;
ROLLBACK;
});
	return split /\n/, $out;
}

# candidates_not_due(NODE, DB, WHERE): makes candidates of the deferred
# jobs of _jobs in database DB that match the condition WHERE, and returns
# how many waiting jobs that match it are now candidates not yet due.  A
# job not yet due is written deferred (docs/architecture.md, "Jobs not yet
# due"); under session_replication_role = replica the lifecycle guard
# leaves a row as it comes and still notes it for the claim marks, so the
# UPDATE makes candidates not due, as rows a subscriber applies can be:
# the claim marks' machinery has to handle them.
sub candidates_not_due
{
	my ($node, $db, $where) = @_;
	return $node->safe_psql($db, qq{
SET session_replication_role = replica;
UPDATE job_engine._jobs SET blocked = NULL
 WHERE blocked = 't' AND state IN ('created', 'retrying') AND ($where);
RESET session_replication_role;
SELECT count(*) FROM job_engine._jobs
 WHERE blocked IS NULL AND state IN ('created', 'retrying') AND run_at > now() AND ($where)});
}

# slow_handler_sql(MAX_SLEEP): SQL that creates the handler function slow()
# and the table knobs.  slow() inserts (job id, attempt) into the test's
# table effects and sleeps a['sleep'] seconds, capped by knobs.max_sleep,
# which starts at MAX_SLEEP.  An attempt reads the cap when it starts:
# lowering it lets the jobs queued behind an interrupted attempt drain fast,
# while the attempts already running keep sleeping until the test interrupts
# them.
sub slow_handler_sql
{
	my ($max_sleep) = @_;
	return qq{
CREATE TABLE knobs (max_sleep float8 NOT NULL);
INSERT INTO knobs VALUES ($max_sleep);
} . q{
CREATE FUNCTION slow(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    n int := (job_engine.context() ->> 'attempt')::int;
BEGIN
    INSERT INTO effects VALUES (job_engine.current_job_id(), n);
    PERFORM pg_sleep(least((a ->> 'sleep')::float8, (SELECT max_sleep FROM knobs)));
    RETURN jsonb_build_object('attempt', n);
END
$$;
};
}

# dies_once_handler_sql(): SQL that creates the handler function
# dies_once(), whose first attempt ends its own executor, as a crash would
# (crash recovery then records it crashed), and whose later attempts succeed.
sub dies_once_handler_sql
{
	return q{
CREATE FUNCTION dies_once(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (job_engine.context() ->> 'attempt')::int = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
        -- The termination is processed at the next interrupt check.
        PERFORM pg_sleep(30);
    END IF;
    RETURN '{}';
END
$$;
};
}

1;

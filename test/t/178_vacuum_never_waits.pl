# The supervisor's vacuum of job_engine._jobs and _attempts (src/vacuum.c)
# never waits for a user's transaction, and so never holds up the rest of
# the supervisor's round (crash recovery, executors started again, purge).
#
# At its end a vacuum overwrites, in place, the pg_class row of each table
# and index it vacuumed, then its database's pg_database row (datfrozenxid,
# up to PostgreSQL 15; the supervisor skips that step from 16 on).  An
# in-place update waits for a transaction that updated the row and is
# still open: ALTER DATABASE ... CONNECTION LIMIT (or OWNER TO, GRANT ON
# DATABASE, ...) for the database's row, GRANT on the table for its row.
# Before the fix the supervisor waited there until the user ended, and an
# executor that died meanwhile was neither recovered nor replaced.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = JobEngineNode::new_node(
	'vacuum_never_waits',
	max_workers => 2,
	extra_conf => q{
job_engine.vacuum_after = 20
# The vacuum says at DEBUG1 that it gave up a wait.
log_min_messages = debug1
# An autovacuum of _jobs would wait for the GRANT below too, holding the
# table: the rebuild would find the table's lock busy, not the GRANT.
autovacuum = off
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(JobEngineNode::dies_once_handler_sql() . q{
CREATE EXTENSION job_engine;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT job_engine.register_handler('noop', 'noop(jsonb)'::regprocedure);
SELECT job_engine.register_handler('dies_once', 'dies_once(jsonb)'::regprocedure,
                                   backoff_base => '50 ms');
CREATE ROLE reader;
});

# Runs N jobs and waits until they have all succeeded.
sub run_jobs
{
	my ($n) = @_;
	my $first = sql(
		"SELECT min(s) FROM job_engine.submit_many('noop', array_fill('{}'::jsonb, ARRAY[$n])) s");
	return defined JobEngineBounds::within($node, 'postgres', 180,
		"SELECT count(*) = $n FROM job_engine.jobs WHERE id >= $first AND state = 'succeeded'");
}

# Runs 30 jobs (more than vacuum_after) and waits until the supervisor has
# vacuumed _jobs once more.
sub vacuumed_again
{
	my $counted = q{
SELECT vacuum_count FROM pg_stat_user_tables
 WHERE schemaname = 'job_engine' AND relname = '_jobs'};
	my $before = sql($counted);
	run_jobs(30);
	return $node->poll_query_until('postgres', "SELECT ($counted) > $before");
}

# Holds `statement` open in a user's transaction, makes a vacuum due (more
# than vacuum_after claims) and checks that an executor that dies while the
# transaction is open is recovered all the same.
sub supervisor_goes_on
{
	my ($name, $statement, $waits) = @_;
	my $log_offset = -s $node->logfile;

	# A new transaction id first: the vacuum is skipped while the removal
	# horizon is where it was at the last one, and the user's transaction
	# (which holds it) must not begin where the last vacuum left it.
	sql('SELECT pg_catalog.txid_current()');
	my $user = $node->background_psql('postgres');
	$user->query_safe('BEGIN');
	$user->query_safe($statement);

	# _jobs comes first: its vacuum is over once it is counted, and the
	# supervisor is then at (or past) the step that waited.
	ok(vacuumed_again(), "$name: the supervisor vacuumed _jobs");

	my $job = sql(q{SELECT job_engine.submit('dies_once')});
	ok( JobEngineBounds::within(
			$node, 'postgres', 60, qq{
SELECT outcome = 'crashed' FROM job_engine.attempts WHERE job_id = $job AND attempt = 1}),
		"$name: the attempt of an executor that died is recovered meanwhile");
	ok( JobEngineBounds::within(
			$node, 'postgres', 60,
			"SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $job"),
		"$name: and its job runs again on a new executor");
	my $cut_short = qr/vacuum of job_engine._jobs and _attempts was cut short/;
	if ($waits)
	{
		like(slurp_file($node->logfile, $log_offset), $cut_short,
			"$name: the vacuum gave up its wait");
	}
	else
	{
		unlike(slurp_file($node->logfile, $log_offset), $cut_short,
			"$name: the vacuum did not wait");
	}

	$user->query_safe('ROLLBACK');
	$user->quit;
}

# From PostgreSQL 16 the vacuum leaves pg_database alone.
my $version = sql('SHOW server_version_num');
supervisor_goes_on('pg_database row', 'ALTER DATABASE postgres CONNECTION LIMIT 50',
	$version < 160000);
supervisor_goes_on('pg_class row', 'GRANT SELECT ON job_engine._attempts TO reader', 1);

# The rebuild of an index that grew under a held xid (vacuum.c) overwrites
# the table's pg_class row in place too.  It waited for a GRANT on the
# table as long as its lock timeout allowed, then failed with an ERROR in
# the log and was given up until another hold; it is a busy lock like
# another: tried again until done.  Two vacuums after no hold first: the
# second notes the sizes.
ok(vacuumed_again() && vacuumed_again(), 'vacuums note the sizes before the hold');
my $file = q{pg_relation_filenode('job_engine._jobs_pkey')};
my $held = $node->background_psql('postgres');
$held->query_safe('BEGIN; SELECT txid_current()');
ok(run_jobs(8000), '8000 jobs run while an xid is held');
cmp_ok(sql(q{SELECT pg_relation_size('job_engine._jobs_pkey')}),
	'>=', 32 * 8192, '_jobs_pkey grew past the size under which indexes are left alone');
my $grown_file = sql("SELECT $file");
$held->query_safe('COMMIT');
$held->quit;

# With the GRANT open, _jobs's vacuum is cut short too (and not counted):
# jobs are run until the rebuild, tried after the first vacuum and then
# every 5 s, says it found a lock busy.  Under the load of the jobs, that
# may be the table's lock: once they are over, the next try gets the
# table, and its REINDEX waits for the GRANT.
my $log_offset = -s $node->logfile;
my $user = $node->background_psql('postgres');
$user->query_safe('BEGIN');
$user->query_safe('GRANT SELECT ON job_engine._jobs TO reader');
my $busy = qr/rebuild of the indexes of job_engine._jobs and _attempts found a lock busy/;
sub times_busy
{
	my @found = slurp_file($node->logfile, $log_offset) =~ /$busy/g;
	return scalar @found;
}
my $deadline = time() + 120;
while (times_busy() == 0 && time() < $deadline)
{
	run_jobs(30) or last;
}
ok(times_busy() > 0, 'the rebuild finds a lock busy');
$deadline = time() + 60;
usleep(100_000) while times_busy() < 2 && time() < $deadline;
ok(times_busy() >= 2, 'with no jobs running, the rebuild is tried again, and finds the GRANT in its way');
is(sql("SELECT $file"), $grown_file, '_jobs_pkey is not rebuilt meanwhile');
$user->query_safe('ROLLBACK');
$user->quit;
ok( JobEngineBounds::within(
		$node, 'postgres', 60, "SELECT $file <> $grown_file"),
	'_jobs_pkey is rebuilt once the GRANT is rolled back');

# The supervisor's lock timeouts are taken quietly, not logged as errors.
unlike(slurp_file($node->logfile), qr/ERROR:.*lock timeout/, 'no lock timeout is logged as an error');

# The engine goes on, and so does its vacuum.
ok(vacuumed_again(), 'a vacuum after the users are gone');

done_testing();

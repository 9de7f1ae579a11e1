# The supervisor's rebuild of the indexes a held horizon made grow
# (src/vacuum.c; docs/architecture.md, "Size after an old snapshot").
#
# While a session holds an xid, every job made and finished meanwhile stays
# in every index of _jobs and _attempts, and a btree never shrinks after a
# vacuum.  Once the xid is released, the first vacuum of the supervisor is
# followed by a REINDEX of each index that grew to more than twice its size
# before the hold: _jobs_pkey gets a new file, smaller than the grown one,
# and the jobs of the table are all still found through it.  Jobs submitted after the rebuild run.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'index_rebuild',
	max_workers => 2,
	# A parallel build would be chosen for any table, as for a large one.
	extra_conf => "job_engine.vacuum_after = 100\nmin_parallel_table_scan_size = 0\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

sql(q{
CREATE EXTENSION job_engine;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('noop', 'noop(jsonb)', queue => 'q');
});

# run_jobs(N, WHAT): submits N jobs and waits for all of them to succeed.
sub run_jobs
{
	my ($n, $what) = @_;
	my $first = sql(
		"SELECT min(s) FROM job_engine.submit_many('noop', (SELECT array_agg(jsonb_build_object('i', i)) FROM generate_series(1, $n) i)) s"
	);
	ok( defined within(180,
			"SELECT count(*) = $n FROM job_engine.jobs WHERE id >= $first AND state = 'succeeded'"),
		"$what: $n jobs succeed");
}

# The primary key: three entries per job (its three row versions), in the
# order of the ids, so that its growth does not depend on page splits.
my $size = q{pg_relation_size('job_engine._jobs_pkey')};
my $file = q{pg_relation_filenode('job_engine._jobs_pkey')};

# Before the hold: vacuums run and note the sizes of the indexes.
run_jobs(300, 'before the hold');
my $vacuums = q{(SELECT vacuum_count FROM pg_stat_all_tables WHERE relid = 'job_engine._jobs'::regclass)};
ok(defined within(60, "SELECT $vacuums >= 1"), 'the supervisor vacuums before the hold');
my $before = sql("SELECT $size");

my $held = $node->background_psql('postgres');
$held->query_safe('BEGIN; SELECT txid_current()');
run_jobs(10000, 'while an xid is held');
my $grown = sql("SELECT $size");
my $grown_file = sql("SELECT $file");
cmp_ok($grown, '>', 2 * $before, "_jobs_pkey grew under the held xid ($before -> $grown bytes)");
cmp_ok($grown, '>=', 32 * 8192, 'it grew past the size under which indexes are left alone');
$held->query_safe('COMMIT');
$held->quit;

# The vacuums that follow the release (each after 100 claims) rebuild it.
my $rebuilt;
for my $round (1 .. 20)
{
	run_jobs(150, "after the release, round $round") or last;
	$rebuilt = within(5, "SELECT $file <> $grown_file");
	last if defined $rebuilt;
}
ok(defined $rebuilt, '_jobs_pkey was rebuilt after the xid was released');
my $after = sql("SELECT $size");
cmp_ok($after, '<', $grown, "the rebuilt index is smaller ($grown -> $after bytes)");
is( sql(q{
SET enable_seqscan = off;
SELECT count(*) = (SELECT count(*) FROM job_engine._jobs)
  FROM job_engine._jobs j, job_engine._jobs k
 WHERE k.id = j.id AND k.correlation_id = j.correlation_id}),
	't',
	'every job is found through the rebuilt index');
run_jobs(100, 'after the rebuild');

# Over job_engine.rebuild_max_rows rows, a grown index is left to the
# operator: a rebuild would stop claims and submits while it reads them all.
sql("ALTER SYSTEM SET job_engine.rebuild_max_rows = 1000");
sql("SELECT pg_reload_conf()");
my $log_offset = -s $node->logfile;
my $kept_file = sql("SELECT $file");
$held = $node->background_psql('postgres');
$held->query_safe('BEGIN; SELECT txid_current()');
run_jobs(10000, 'while an xid is held again');
$held->query_safe('COMMIT');
$held->quit;
# The supervisor tries a rebuild at most every 5 s: the log is polled for
# up to two minutes, with jobs claimed meanwhile so that vacuums follow.
my $said;
my $deadline = time() + 120;
my $round = 0;
while (!$said && time() < $deadline)
{
	$round++;
	run_jobs(150, "after the second release, round $round") or last;
	$said = slurp_file($node->logfile, $log_offset) =~
	  /index job_engine\._jobs_pkey grew while an old snapshot was held and is not rebuilt: its table holds \d+ rows\n.*HINT:  Run REINDEX INDEX CONCURRENTLY job_engine\._jobs_pkey/;
	select(undef, undef, undef, 0.5) unless $said;
}
ok($said, 'over rebuild_max_rows rows the index is not rebuilt, and the log says what to run');
is(sql("SELECT $file"), $kept_file, '_jobs_pkey keeps its file');

done_testing();

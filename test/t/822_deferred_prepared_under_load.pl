# A delayed job submitted by a transaction prepared for two-phase commit is
# released when due even while every executor stays busy
# (docs/architecture.md, "Jobs not yet due"; src/deferred.c).  COMMIT
# PREPARED runs no callback of the submitting backend, so nothing tells the
# table of claim marks when the job is due: a claim that releases only when
# the table says a job may be due would never release it, and only an
# executor going idle would.  mallory, a plain LOGIN role, prepares the
# submit of a job ahead of a stream of work by priority; it must run while
# the stream still keeps both executors busy, not after the stream ends.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'deferred_prepared_under_load',
	max_workers => 2,
	extra_conf => "max_prepared_transactions = 10\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub within { return JobEngineBounds::within($node, 'postgres', @_); }

JobEngineNode::create_extension_with_noop_handler($node, 'postgres', 'work', queue => 'stream');
sql(q{
CREATE ROLE mallory LOGIN;
CREATE FUNCTION slow(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT pg_sleep(0.05); SELECT a $$;
SELECT job_engine.register_handler('slow', 'slow(jsonb)', queue => 'stream');
});

# Both executors busy with a stream of 1,000 jobs of 50 ms (about 25 s).
sql(q{SELECT count(job_engine.submit('slow', '{}')) FROM generate_series(1, 1000)});
ok(defined within(30, q{SELECT count(*) = 2 FROM job_engine.jobs WHERE handler = 'slow' AND state = 'running'}),
	'both executors run the stream');

my $prep = $node->background_psql('postgres');
$prep->query_safe('SET ROLE mallory');
$prep->query_safe('BEGIN');
my $urgent = $prep->query_safe(q{SELECT job_engine.submit('work', '{}', priority => -1,
                                                  run_at => clock_timestamp() + interval '1 second')});
$prep->query_safe(q{PREPARE TRANSACTION 'delayed'});
$prep->query_safe(q{COMMIT PREPARED 'delayed'});
$prep->quit;
is(sql("SELECT blocked FROM job_engine._jobs WHERE id = $urgent"), 't', 'the prepared job is deferred');

ok(defined within(90, "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $urgent"),
	'the prepared job runs');
ok(defined within(90, q{SELECT count(*) = 1000 FROM job_engine.jobs WHERE handler = 'slow' AND state = 'succeeded'}),
	'the stream ends');
my $after = sql(qq{SELECT count(*) FROM job_engine.jobs
                    WHERE handler = 'slow' AND started_at > (SELECT started_at FROM job_engine.jobs WHERE id = $urgent)});
cmp_ok($after, '>=', 100,
	"it was released while the executors were busy: $after jobs of the stream started after it");

done_testing();

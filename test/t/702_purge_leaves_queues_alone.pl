# purge() is granted to PUBLIC.  Besides the finished jobs of the caller's
# roles, it removes the queues that nothing uses (src/sql/86_retention.sql).
# An ordinary role that leaves a purge's transaction open must not hold the
# rows of queues that are in use: submitting to them takes their row
# FOR KEY SHARE (_ensure_queue), pausing or configuring them FOR UPDATE, and
# every role's submit to a queue by name would otherwise wait for that
# transaction (docs/architecture.md §7, Bounded waits).
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('purge_queues');

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION job_engine;
CREATE ROLE alice;
CREATE ROLE mallory;
CREATE FUNCTION ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('ok', 'ok(jsonb)', queue => 'named_by_handler');
SET ROLE alice;
SELECT job_engine.submit('ok', queue => 'holds_a_job', run_at => now() + interval '1 hour');
});

my $mallory = $node->background_psql('postgres');
$mallory->query_safe('SET ROLE mallory');
$mallory->query_safe('BEGIN');
$mallory->query_safe(q{SELECT job_engine.purge('1 day')});

# Each with a bound: a wait on mallory's transaction fails with 55P03.
for my $queue (qw(named_by_handler holds_a_job))
{
	my ($rc, $out, $err) = $node->psql('postgres', qq{
SET lock_timeout = '3s';
SET ROLE alice;
SELECT job_engine.submit('ok', queue => '$queue', run_at => now() + interval '1 hour') IS NOT NULL;
});
	is($err, '', "a submit to queue $queue does not wait for another role's open purge");
	($rc, $out, $err) = $node->psql('postgres', qq{
SET lock_timeout = '3s';
BEGIN;
SELECT job_engine.pause_queue('$queue');
ROLLBACK;
});
	is($err, '', "pausing queue $queue does not wait for it either");
}

$mallory->query_safe('COMMIT');
$mallory->quit;

is(sql(q{SELECT string_agg(name, ',' ORDER BY name) FROM job_engine.queues}),
	'holds_a_job,named_by_handler', 'the queues in use are still there');

$node->stop;
done_testing();

# Blocked work one role parks does not stop another role's drain (issue 12
# §3, third bullet).
#
# PUBLIC creates queues by submitting to them.  alice parks one due job,
# blocked by depends_on on a job of hers due tomorrow, at the head of each
# of 800 queues; every parked head comes before bob's jobs in claim order.
# bob then submits 200 jobs that do nothing: they must all succeed within
# 60 s on two executors (a claim costing seconds, growing with the parked
# queues, lets only a handful through).  test/pgtap/460_claim_cost.sql
# counts the claim's scans for the same situation.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('parked_queues', max_workers => 2);

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE alice;
CREATE ROLE bob;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('noop', 'noop(jsonb)', queue => 'bob_q');
});

my $parked = $node->safe_psql(
	'postgres', q{
SET ROLE alice;
SELECT job_engine.submit('noop', '{}', queue => 'alice_blocker', run_at => now() + interval '1 day') AS blocker \gset
SELECT count(job_engine.submit('noop', '{}', queue => 'parked_' || i, depends_on => ARRAY[:blocker::bigint]))
  FROM generate_series(1, 800) i;
});
is($parked, '800', 'alice parked 800 blocked queue heads');

$node->safe_psql(
	'postgres', q{
SET ROLE bob;
SELECT count(*) FROM job_engine.submit_many('noop', array_fill('{}'::jsonb, ARRAY[200]));
});
my $took = JobEngineBounds::within($node, 'postgres', 60,
	q{SELECT count(*) = 200 FROM job_engine.jobs WHERE owner = 'bob' AND state = 'succeeded'});
ok(defined $took, "bob's 200 jobs succeed within 60 s despite 800 parked queues")
  or diag 'succeeded by then: '
  . $node->safe_psql('postgres',
	q{SELECT count(*) FROM job_engine.jobs WHERE owner = 'bob' AND state = 'succeeded'});
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM job_engine.jobs WHERE owner = 'alice' AND state = 'created'}),
	'801', 'alice\'s parked jobs still wait');

done_testing();

# The claim marks (src/dispatch.c) are rebuilt only while no prepared
# transaction holds a lock on job_engine._jobs: rows a prepared transaction
# made candidates become visible at COMMIT PREPARED with no lowering.  But
# any lock counts, and reading the jobs view takes ACCESS SHARE on _jobs.
# alice, a plain LOGIN role, prepares a transaction that only read her own
# jobs and leaves it: once the table is incomplete (here her own prepared
# submit, committed at once), it stays incomplete for as long as she likes,
# and every claim walks every queue from its start again, the cost the
# marks exist to avoid (docs/architecture.md, "Claim low-water marks").
# A transaction that only read _jobs can make no row a candidate, so it
# should not stop the rebuild.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'prepared_read_keeps_marks_incomplete',
	max_workers => 2,
	extra_conf => "max_prepared_transactions = 4\n");

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE alice LOGIN;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('noop', 'noop(jsonb)');
});

# Claims come every poll_interval (200ms here); one of them rebuilds.
ok(defined JobEngineBounds::within($node, 'postgres', 30, 'SELECT job_engine_internal._dispatch_complete()'),
	'the marks are complete at first');

my $alice = $node->background_psql('postgres');
$alice->query_safe('SET ROLE alice');
$alice->query_safe(q{BEGIN; SELECT job_engine.submit('noop'); PREPARE TRANSACTION 'submit'});
$alice->query_safe(q{BEGIN; SELECT count(*) FROM job_engine.jobs; PREPARE TRANSACTION 'read'});
$alice->query_safe(q{COMMIT PREPARED 'submit'});
ok(defined JobEngineBounds::within($node, 'postgres', 30,
		q{SELECT bool_and(state = 'succeeded') FROM job_engine.jobs}),
	'the prepared submit ran');
ok(defined JobEngineBounds::within($node, 'postgres', 20, 'SELECT job_engine_internal._dispatch_complete()'),
	'the marks are complete again while a prepared transaction that only read jobs is left open');

$node->safe_psql('postgres', q{ROLLBACK PREPARED 'read'});
$alice->quit;
done_testing();

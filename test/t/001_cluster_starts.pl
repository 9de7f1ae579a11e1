# Smoke test of the TAP phase: a cluster with job_engine preloaded starts,
# and the extension can be created in it.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('main');

$node->safe_psql('postgres', 'CREATE EXTENSION job_engine');
is( $node->safe_psql(
		'postgres',
		"SELECT extname FROM pg_extension WHERE extname = 'job_engine'"),
	'job_engine',
	'job_engine is installed');

$node->stop;
done_testing();

# Smoke test of the TAP phase: a cluster with job_engine preloaded starts,
# and the extension can be created in it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'job_engine'");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION job_engine');
is( $node->safe_psql(
		'postgres',
		"SELECT extname FROM pg_extension WHERE extname = 'job_engine'"),
	'job_engine',
	'job_engine is installed');

$node->stop;
done_testing();

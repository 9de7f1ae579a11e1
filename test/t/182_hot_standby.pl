# A hot standby runs nothing and accepts no work, and a promoted standby
# serves what the primary left waiting (README "On a hot standby"): on the
# standby the views can be read, submit fails with SQLSTATE 25006, no
# job_engine worker runs; after promotion the workers start and the job the
# primary left waiting runs there.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = JobEngineNode::new_node('primary', max_workers => 1, allows_streaming => 1);
$primary->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION public.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('echo', 'public.echo(jsonb)', queue => 'later');
SELECT job_engine.pause_queue('later');
});
my $left = $primary->safe_psql('postgres', q{SELECT job_engine.submit('echo', '{"left": "waiting"}')});

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $left"),
	'created', 'the views can be read on the standby');
my ($rc, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT job_engine.submit('echo', '{}')");
isnt($rc, 0, 'submit fails on the standby');
like($err, qr/25006/, 'with SQLSTATE 25006 (read-only transaction)');
like($standby->safe_psql('postgres', 'SELECT problem FROM job_engine.status()'),
	qr/^the server is a standby in recovery/, 'status() says the server is a standby');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'job_engine%'"),
	'0', 'no job_engine worker runs on the standby');

$primary->stop;
$standby->promote;
ok($standby->poll_query_until('postgres', 'SELECT count(*) = 1 FROM job_engine.workers'),
	'the promoted standby starts its executor');
$standby->safe_psql('postgres', q{SELECT job_engine.resume_queue('later')});
ok($standby->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $left"),
	'the job the primary left waiting runs after promotion');
is($standby->safe_psql('postgres', "SELECT result ->> 'left' FROM job_engine.jobs WHERE id = $left"),
	'waiting', 'with its arguments');

done_testing();

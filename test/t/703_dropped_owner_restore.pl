# A job whose owner was dropped keeps the role's number (docs/architecture.md
# §7, "Owners in dumps and upgrades"): regrole writes it as digits, and a
# restore reads digits back as that OID, whatever role has it in the cluster
# restored into.  Role OIDs are handed out from the same counter in every
# cluster, so that number is easily another role there: the job, its args
# and result would become that role's, shown to it in job_engine.jobs and
# run as it.  A job must never pass to a role that did not submit it.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = JobEngineNode::new_node('dropped_src', databases => 'postgres');
$src->safe_psql('postgres', 'CREATE DATABASE app');
$src->safe_psql('app', q{
CREATE EXTENSION job_engine;
CREATE FUNCTION ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('ok', 'ok(jsonb)');
CREATE ROLE leaver;
SET ROLE leaver;
SELECT job_engine.submit('ok', '{"secret": "of leaver"}', run_at => now() + interval '1 day');
RESET ROLE;
});
my $oid = $src->safe_psql('app', q{SELECT 'leaver'::regrole::oid});
$src->safe_psql('app', 'DROP ROLE leaver');
is($src->safe_psql('app', q{SELECT owner::text FROM job_engine._jobs}), $oid,
	'the job of the dropped role reads as its number, as pg_dump writes it');

my $dir = PostgreSQL::Test::Utils::tempdir();
$src->command_ok([ 'pg_dump', '-Fc', '-f', "$dir/app.dump", '-d', 'app' ], 'pg_dump');
$src->stop;

# In the second cluster, a role that happens to get the same number.
my $dst = JobEngineNode::new_node('dropped_dst', databases => 'postgres');
my $got = 0;
while ($got < $oid)
{
	$got = $dst->safe_psql('postgres', q{CREATE ROLE bystander; SELECT 'bystander'::regrole::oid});
	$dst->safe_psql('postgres', 'DROP ROLE bystander') if $got < $oid;
}
SKIP:
{
	skip "the second cluster's OIDs are past $oid already", 2 if $got != $oid;

	$dst->safe_psql('postgres', 'CREATE DATABASE app');
	$dst->command_ok([ 'pg_restore', '--single-transaction', '--exit-on-error', '-d', 'app', "$dir/app.dump" ],
		'pg_restore');
	is( $dst->safe_psql('app', q{SET ROLE bystander;
		SELECT count(*) FROM job_engine.jobs WHERE args ->> 'secret' = 'of leaver'}),
		'0', 'the dropped role\'s job is not another role\'s after the restore');
}

$dst->stop;
done_testing();

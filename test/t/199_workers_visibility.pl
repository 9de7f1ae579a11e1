# What job_engine.workers (job_engine_internal._workers()) shows a role,
# by the rule of pg_stat_activity and of the jobs view together
# (docs/reference.md, "job_engine.workers"):
#
#  a. A plain role sees the executors of the current database only, and the
#     job and attempt of a busy one only when the job is its own.
#  b. The job's owner, and the owner of the database, see the job and attempt.
#  c. pg_monitor (pg_read_all_stats) and superusers see every database's
#     executors and their jobs.
#  d. status(), which counts the executors for everyone, still counts the
#     busy one for a plain role.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node(
	'workers_visibility',
	databases => 'shop,other',
	max_workers => 1);

$node->safe_psql(
	'postgres', q{
CREATE ROLE alice NOLOGIN;
CREATE ROLE bob NOLOGIN;
CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE watcher NOLOGIN;
GRANT pg_monitor TO watcher;
CREATE DATABASE shop OWNER shop_owner;
CREATE DATABASE other;
});
my $setup = q{
CREATE EXTENSION job_engine;
CREATE FUNCTION public.nap(a jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT pg_sleep(300); SELECT '{}'::jsonb $$;
SELECT job_engine.register_handler('nap', 'public.nap(jsonb)', max_attempts => 1, timeout => '10 min');
};
$node->safe_psql('shop',  $setup);
$node->safe_psql('other', $setup);

my $bobs = $node->safe_psql('shop', q{SET ROLE bob; SELECT job_engine.submit('nap')});
my $theirs = $node->safe_psql('other', q{SELECT job_engine.submit('nap')});
ok( $node->poll_query_until(
		'shop', qq{
SELECT count(*) = 2 FROM job_engine.workers
 WHERE (database, job_id) IN (('shop', $bobs), ('other', $theirs))}),
	"bob's job runs in shop, another in other (as a superuser sees them)");

# What ROLE sees in DB: its rows of the workers view, as text.
sub seen
{
	my ($db, $role) = @_;
	return $node->safe_psql(
		$db, qq{
SET ROLE $role;
SELECT string_agg(format('%s %s %s', database, state, coalesce(job_id::text, '-')), ', '
                  ORDER BY database)
  FROM job_engine.workers});
}

# -- a. a plain role -------------------------------------------------------------
is(seen('shop', 'alice'), 'shop busy -',
	"alice sees shop's executor busy, not bob's job, and nothing of other");
is( $node->safe_psql(
		'shop', q{SET ROLE alice;
SELECT count(*) FROM job_engine_internal._workers() WHERE job_id IS NOT NULL OR database <> (SELECT oid FROM pg_database WHERE datname = 'shop')}),
	'0', '_workers() called directly shows her no more');

# -- b. the job's owner, the database's owner --------------------------------------
is(seen('shop', 'bob'), "shop busy $bobs", 'bob sees his own job on the executor');
is(seen('shop', 'shop_owner'), "shop busy $bobs", "shop's owner sees the job, as in the jobs view");
is(seen('other', 'shop_owner'), 'other busy -', "but not the jobs of another database's roles");

# -- c. pg_monitor ----------------------------------------------------------------
is(seen('shop', 'watcher'), "other busy $theirs, shop busy $bobs",
	'a member of pg_monitor sees every database and every job');

# -- d. status() --------------------------------------------------------------------
is( $node->safe_psql(
		'shop', q{SET ROLE alice; SELECT executors_running || '/' || executors_busy FROM job_engine.status()}),
	'1/1', 'status() counts the busy executor for alice');

$node->safe_psql('shop',  "SELECT job_engine.abort($bobs, 'done')");
$node->safe_psql('other', "SELECT job_engine.abort($theirs, 'done')");
$node->stop;
done_testing();

# Dump and restore into another cluster where the roles exist
# (docs/architecture.md, "7. Security model", Owners in dumps).
#
#  1. The database's owner, not a superuser, dumps it with pg_dump -Fc
#     --enable-row-security: it may read every table and sequence the
#     extension marks for the dump, every role's jobs included.
#  2. Restored into a second cluster (roles from pg_dumpall --roles-only,
#     where they get other OIDs), every job, attempt, event, subscription,
#     handler and queue arrives with its owner's name, and each owner sees
#     its jobs in job_engine.jobs.
#  3. The waiting jobs then run there as their owners, and the job that was
#     running when the dump was taken is recovered and runs again.
use strict;
use warnings;

use JobEngineNode;
use JobEngineWorkload;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = JobEngineNode::new_node('dump_src', databases => 'postgres,app');
my $id = JobEngineWorkload::create($src);
my %before = JobEngineWorkload::snapshot($src);

my $dir = PostgreSQL::Test::Utils::tempdir();
$src->command_ok([ 'pg_dumpall', '--roles-only', '-f', "$dir/roles.sql" ],
	'pg_dumpall --roles-only');
# Row security applies to the owner's reads of _jobs: pg_dump refuses
# without --enable-row-security rather than leave rows out, and with it the
# owner's policy shows every role's jobs (check_arrived counts them all).
my $dumped = $src->run_log([ 'pg_dump', '-U', 'dbo', '--enable-row-security', '-Fc',
		'-f', "$dir/app.dump", '-d', 'app' ]);
ok($dumped, 'pg_dump -Fc --enable-row-security by the database owner, not a superuser');
# Without it, go on with a superuser's dump, so that the rest is still tested.
$src->command_ok([ 'pg_dump', '-Fc', '-f', "$dir/app.dump", '-d', 'app' ], 'pg_dump -Fc by a superuser')
  unless $dumped;
my %src_oid = map { $_ => $src->safe_psql('postgres', "SELECT '$_'::regrole::oid") } qw(alice bob);
$src->stop;

# The second cluster makes roles of its own first: the restored ones get
# other OIDs, and the first OIDs of the dumped roles are other roles' here.
my $dst = JobEngineNode::new_node('dump_dst', databases => 'postgres,app');
$dst->safe_psql('postgres', 'CREATE ROLE early1; CREATE ROLE early2; CREATE ROLE early3;');
# The dump creates the bootstrap superuser too, which exists: that one error
# is expected.
$dst->psql('postgres', PostgreSQL::Test::Utils::slurp_file("$dir/roles.sql"), on_error_stop => 0);
for my $role (qw(alice bob))
{
	isnt($dst->safe_psql('postgres', "SELECT '$role'::regrole::oid"),
		$src_oid{$role}, "$role has another OID in the second cluster");
}
$dst->safe_psql('postgres', 'CREATE DATABASE app OWNER dbo');
# In one transaction: the executors see the database only once it is whole.
$dst->command_ok([ 'pg_restore', '--single-transaction', '--exit-on-error', '-d', 'app', "$dir/app.dump" ],
	'pg_restore into a database the second cluster serves');

JobEngineWorkload::check_arrived($dst, \%before, $id, 'restore');
is( $dst->safe_psql('app', q{
SELECT count(*) FROM job_engine._jobs WHERE owner::oid NOT IN ('alice'::regrole, 'bob'::regrole)}),
	'0', 'restore: the owners are the OIDs of the roles of that name here');
JobEngineWorkload::check_resumes($dst, $id, 'restore');

$dst->stop;
done_testing();

# pg_upgrade of a cluster where job_engine serves a database
# (docs/architecture.md, "7. Security model", Owners in dumps; README,
# "Upgrading PostgreSQL").
#
# 15 to 15 here: pg_upgrade runs the same checks and carries the data the
# same way as across major versions.
#
#  1. pg_upgrade --check accepts the cluster: no table of job_engine has a
#     reg* column pg_upgrade refuses.
#  2. While pg_upgrade runs the servers (binary-upgrade mode), job_engine
#     starts no worker: nothing claims, recovers or purges jobs of the old
#     cluster while it is read, or connects to the new one being restored.
#  3. Every job (in every state), attempt, event, subscription, handler and
#     queue arrives with its owner, each owner sees its jobs, the waiting
#     jobs run as their owners and the job that was running when the old
#     server stopped is recovered and runs again.
use strict;
use warnings;

use Cwd;
use JobEngineNode;
use JobEngineWorkload;
use PostgreSQL::Test::Utils;
use Test::More;

my $old = JobEngineNode::new_node('upgrade_old', databases => 'postgres,app');
my $id = JobEngineWorkload::create($old);
my %before = JobEngineWorkload::snapshot($old);
# A fast shutdown ends the running attempt; its job stays 'running'.
$old->stop;

my $new = JobEngineNode::new_node('upgrade_new', databases => 'postgres,app');
$new->stop;

my @upgrade = (
	'pg_upgrade', '--no-sync',
	'-d', $old->data_dir, '-D', $new->data_dir,
	'-b', $old->config_data('--bindir'), '-B', $new->config_data('--bindir'),
	'-s', $new->host, '-p', $old->port, '-P', $new->port);
# pg_upgrade writes files into the current directory.
my $cwd = getcwd();
chdir(PostgreSQL::Test::Utils::tempdir()) or die "chdir: $!";
command_ok([ @upgrade, '--check' ], 'pg_upgrade --check accepts the cluster');
command_ok([ @upgrade, '--retain' ], 'pg_upgrade');
chdir($cwd) or die "chdir: $!";

# The log of the servers pg_upgrade ran, kept by --retain.  A worker there
# leaves its messages ("job_engine: ...", such as the database 'app' not
# existing yet in the new cluster) and, at each server's stop, the line of
# its termination ("background worker "job_engine launcher" ...").
my @logs = grep { -f } glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_server.log');
is(scalar(@logs), 1, 'pg_upgrade kept the log of its servers');
# Messages of the workers, not statements that merely quote the words (the
# schema's COMMENT, restored by pg_upgrade, begins with "job_engine: ").
my @worker_lines = grep { /(?:LOG|WARNING|ERROR|FATAL):\s+job_engine: |"job_engine (launcher|supervisor|executor)"/ }
  map { split /\n/, slurp_file($_) } @logs;
is(join("\n", @worker_lines), '', 'no job_engine worker ran under pg_upgrade');

$new->start;
JobEngineWorkload::check_arrived($new, \%before, $id, 'upgrade');
JobEngineWorkload::check_resumes($new, $id, 'upgrade');
my $max = $new->safe_psql('app', 'SELECT max(id) FROM job_engine._jobs');
my $next = $new->safe_psql('app', q{SET ROLE bob; SELECT job_engine.submit('bad', '{}')});
cmp_ok($next, '>', $max, 'upgrade: a new job gets an id above the carried ones');

$new->stop;
done_testing();

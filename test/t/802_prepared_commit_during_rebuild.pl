# A rebuild of the claim marks (src/dispatch.c, je_dispatch_rebuild) walks
# every queue's first candidate in one statement, and only after it looks
# for a prepared transaction holding a lock on _jobs.  A COMMIT PREPARED
# that lands between the walk's snapshot and that look makes a job visible
# that the walk did not see, with no lowering (COMMIT PREPARED runs no
# callback of ours) and no lock left to refuse the rebuild: the table is
# filled complete without the job's queue (or with its mark above it), and
# the job is never claimed.
#
# A transaction prepares a submit again and again and commits it at random
# moments, while a session of alice, a plain LOGIN role, holds an xid so
# that the walk visits the dead index entries of the jobs claimed since
# (which makes the window wider).  Each prepared job is a candidate due a
# moment after its commit: the claim that rebuilt the table in the window
# cannot take it at once (its next statement would see it), so the table
# is left without its queue.  Every prepared job must then succeed.
#
# alice, who needs only PREPARE TRANSACTION, once made such candidates
# herself with jobs due a moment later; a job not yet due is now deferred
# (docs/architecture.md, "Jobs not yet due"), no candidate at COMMIT
# PREPARED, and made one later by a claim's release, an ordinary write.
# Candidates not due still arise from rows written under
# session_replication_role = replica, which the guard leaves as they come:
# the prepared transaction, a superuser's, writes its job so.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = JobEngineNode::new_node(
	'prepared_commit_during_rebuild',
	max_workers => 2,
	# Idle executors sleep until the next deferred job, not a candidate
	# not due: they find these at their poll, every 100 ms here.
	extra_conf => "max_prepared_transactions = 10\njob_engine.poll_interval = '100ms'\n");

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE alice LOGIN;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('noop', 'noop(jsonb)', queue => 'bulk');
});

# Dead entries for the walk to visit: an xid held, then jobs run.
my $holder = $node->background_psql('postgres');
$holder->query_safe('SET ROLE alice; BEGIN; SELECT txid_current()');
$node->safe_psql('postgres', q{SET ROLE alice;
SELECT job_engine.submit_many('noop', array_agg('{}'::jsonb)) FROM generate_series(1, 100000)});
ok(defined JobEngineBounds::within($node, 'postgres', 240,
		q{SELECT count(*) = 0 FROM job_engine.jobs WHERE state NOT IN ('succeeded', 'failed')}),
	'the bulk jobs ran');

my $prep = $node->background_psql('postgres');
my ($stuck, $tries);
for my $i (1 .. 110)
{
	$tries = $i;
	# A background session's timer runs from its start: a new one now and then.
	if ($i % 40 == 0)
	{
		$prep->quit;
		$prep = $node->background_psql('postgres');
	}
	$prep->query_safe('BEGIN');
	my $id = $prep->query_safe(
		qq{SELECT job_engine.submit('noop', '{"i": $i}', queue => 'pq$i', priority => -1,
		                     run_at => now() + interval '1.2 seconds')});
	$prep->query_safe('SET LOCAL session_replication_role = replica');
	die "job $id was not deferred"
	  unless $prep->query_safe(qq{WITH u AS (UPDATE job_engine._jobs SET blocked = NULL
	                                          WHERE id = $id AND blocked = 't' RETURNING 1)
	                              SELECT count(*) FROM u}) eq '1';
	$prep->query_safe(qq{PREPARE TRANSACTION 'p$i'});
	usleep(int(rand(1_050_000)));
	$prep->query_safe(qq{COMMIT PREPARED 'p$i'});
	# The next PREPARE would make the table incomplete again and its
	# rebuild find the job: each job is waited for before the next.
	next if defined JobEngineBounds::within($node, 'postgres', 15,
		qq{SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $id});
	$stuck = $id;
	last;
}
ok(!defined $stuck, "every job of a prepared submit succeeds ($tries tries)")
  or diag("job $stuck: "
	  . $node->safe_psql('postgres', qq{SELECT queue || ' ' || state FROM job_engine.jobs WHERE id = $stuck})
	  . "\nmarks:\n" . $node->safe_psql('postgres', 'SELECT * FROM job_engine_internal._dispatch_marks()')
	  . "\ncomplete: " . $node->safe_psql('postgres', 'SELECT job_engine_internal._dispatch_complete()')
	  . "\nworkers:\n" . $node->safe_psql('postgres', 'SELECT pid, state, job_id FROM job_engine.workers'));

$prep->quit;
$node->stop('immediate');
done_testing();

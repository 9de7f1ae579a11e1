# The supervisor rebuilds the running counts (src/running.c) when they are
# not trusted.  A rebuild cut short by an error (here: the supervisor
# cancelled while its count waits for a lock on _jobs) must not leave the
# table marked as being rebuilt for good: the next supervisor rebuilds it,
# and claims of limited queues stop counting rows.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('rebuild_cut_short', max_workers => 2);
$node->safe_psql('postgres', q{CREATE EXTENSION job_engine});

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $trusted = q{SELECT bool_and(trusted) FROM job_engine_internal._running_counts()};
ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted');

# A TRUNCATE makes the counts untrusted at its commit; the locker queued
# behind it takes _jobs before the supervisor's count can read it.
my $truncater = $node->background_psql('postgres');
$truncater->query_safe('BEGIN');
$truncater->query_safe(
	'TRUNCATE job_engine._attempts, job_engine._dependencies, job_engine._jobs');
my $locker = $node->background_psql('postgres');
$locker->query_until(qr/locking/, q{\echo locking
BEGIN;
LOCK TABLE job_engine._jobs IN ACCESS EXCLUSIVE MODE;
});
my $locker_waits = q{SELECT count(*) = 2 FROM pg_locks
                      WHERE relation = 'job_engine._jobs'::regclass AND mode = 'AccessExclusiveLock'};
ok($node->poll_query_until('postgres', $locker_waits), 'the locker waits behind the TRUNCATE');
$truncater->query_safe('COMMIT');
$truncater->quit;

my $supervisor = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'job_engine supervisor'};
my $old = sql($supervisor);
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) = 1 FROM pg_locks
                        WHERE pid = $old AND relation = 'job_engine._jobs'::regclass AND NOT granted}),
	'the supervisor waits for _jobs');
is(sql($trusted), 'f', 'the counts are not trusted');
sql(qq{SELECT pg_cancel_backend($old)});
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
                        WHERE backend_type = 'job_engine supervisor' AND pid <> $old}),
	'another supervisor serves the database');
$locker->query_safe('COMMIT');
$locker->quit;
ok($node->poll_query_until('postgres', $trusted), 'the counts are trusted again');

done_testing();

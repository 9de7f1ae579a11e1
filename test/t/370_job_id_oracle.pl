# A job id of another role answers exactly like an id that never existed
# (P0002), whatever that job's row is going through: abort(), resubmit()
# and wait() decide visibility from a plain read before they lock anything,
# so neither a lock held by the owner's open transaction (55P03 under
# lock_timeout, with the tuple's location) nor a change after the caller's
# snapshot (40001 under REPEATABLE READ) tells the caller the job exists.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('job_id_oracle');

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION job_engine;
CREATE ROLE alice;
CREATE ROLE bob;
CREATE FUNCTION ok(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
SELECT job_engine.register_handler('ok', 'ok(jsonb)');
});

# Jobs of bob that never run during the test.
sub bob_job
{
	return sql("SET ROLE bob; SELECT job_engine.submit('ok', run_at => now() + interval '1 hour')");
}
my $locked = bob_job();
my $changed = bob_job();
my $missing = sql('SELECT max(id) + 1000 FROM job_engine._jobs');

my @calls = (
	[ 'abort',    "job_engine.abort(%s, 'x')" ],
	[ 'resubmit', 'job_engine.resubmit(%s)' ],
	[ 'wait',     "job_engine.wait(%s, '0 seconds')" ],
	[ 'depends_on', "job_engine.submit('ok', depends_on => ARRAY[%s::bigint])" ]);

# The SQLSTATE (and any CONTEXT) of $call on $id by alice, in a session of
# its own with a short lock_timeout.
sub alice_error
{
	my ($call, $id) = @_;
	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSET lock_timeout = '300ms';\nSET ROLE alice;\n"
		  . 'SELECT ' . sprintf($call, $id));
	return $err;
}

# 1. bob holds his job's row in an open transaction.
my $bob = $node->background_psql('postgres');
$bob->query_safe('SET ROLE bob');
$bob->query_safe('BEGIN');
$bob->query_safe("SELECT job_engine.abort($locked, 'x')");
for my $c (@calls)
{
	my ($name, $call) = @$c;
	my $seen = alice_error($call, $locked);
	my $none = alice_error($call, $missing);
	like($seen, qr/ERROR:  (P0002|23503): job $locked /,
		"$name of another role's locked job: does not exist");
	unlike($seen, qr/55P03|tuple/, "$name of another role's locked job: no lock wait shows");
	(my $norm = $seen) =~ s/job $locked\b/job N/g;
	(my $nnorm = $none) =~ s/job $missing\b/job N/g;
	is($norm, $nnorm, "$name: a locked job of another role reads like a missing id");
}
$bob->query_safe('ROLLBACK');
$bob->quit;

# 2. alice's REPEATABLE READ snapshot predates a change to bob's job.
for my $c (@calls)
{
	my ($name, $call) = @$c;
	my $alice = $node->background_psql('postgres', on_error_stop => 0);
	$alice->query_safe('SET ROLE alice');
	my %err;
	for my $id ($changed, $missing)
	{
		$alice->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
		$alice->query_safe('SELECT count(*) FROM job_engine.jobs');
		sql("UPDATE job_engine._jobs SET priority = priority + 1 WHERE id = $changed");
		$alice->{stderr} = '';
		eval { $alice->query('SELECT ' . sprintf($call, $id)); 1 } or diag "query: $@";
		($err{$id} = $alice->{stderr}) =~ s/job $id\b/job N/g;
		$err{$id} =~ s/^psql:<stdin>:\d+: //;
		$alice->{stderr} = '';
		eval { $alice->query_safe('ROLLBACK'); 1 } or diag "rollback: $@";
	}
	unlike($err{$changed}, qr/40001|could not serialize/, "$name under REPEATABLE READ: no serialization failure");
	is($err{$changed}, $err{$missing},
		"$name under REPEATABLE READ: a changed job of another role reads like a missing id");
	$alice->quit;
}

done_testing();

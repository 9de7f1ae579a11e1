# DROP EXTENSION job_engine refuses while jobs are unfinished (README
# "Installing", docs/reference.md "Dropping the extension"): it would delete
# them with the whole history.  The refusal is PostgreSQL's for dependent
# objects, 2BP01 with a hint, and CASCADE discards them.  A role that may not
# drop the extension gets PostgreSQL's own error, not the count of jobs.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('drop_extension', max_workers => 1);
my $setup = q{
CREATE EXTENSION job_engine;
CREATE OR REPLACE FUNCTION public.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('echo', 'public.echo(jsonb)', queue => 'parked');
SELECT job_engine.pause_queue('parked');
};
$node->safe_psql('postgres', "CREATE ROLE plain LOGIN;\n$setup");
my $waiting = $node->safe_psql('postgres', q{SELECT job_engine.submit('echo', '{}')});

sub try_sql
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return ($rc, $err);
}

my ($rc, $err) = try_sql("SET ROLE plain;\nDROP EXTENSION job_engine");
like($err, qr/42501: must be owner of extension job_engine/, "a role that does not own the extension gets PostgreSQL's error");
unlike($err, qr/unfinished/, '... and learns nothing of the jobs');

($rc, $err) = try_sql('DROP EXTENSION job_engine');
isnt($rc, 0, 'DROP EXTENSION with a waiting job fails');
like($err, qr/2BP01: cannot drop extension job_engine because 1 unfinished job\(s\) depend on it/,
	'with 2BP01, saying how many jobs are unfinished');
like($err, qr/HINT:  .*DROP EXTENSION job_engine CASCADE/, '... and a hint');
($rc, $err) = try_sql('DROP EXTENSION IF EXISTS pg_cron, job_engine');
like($err, qr/2BP01/, 'IF EXISTS and a list of extensions refuse too');
is($node->safe_psql('postgres', "SELECT state FROM job_engine.jobs WHERE id = $waiting"),
	'created', 'the extension and the waiting job are still there');

$node->safe_psql('postgres', "SELECT job_engine.abort($waiting, 'dropping')");
($rc, $err) = try_sql('DROP EXTENSION job_engine');
is($rc, 0, 'without unfinished jobs DROP EXTENSION succeeds') or diag $err;

$node->safe_psql('postgres', $setup);
$node->safe_psql('postgres', q{SELECT job_engine.submit('echo', '{}')});
($rc, $err) = try_sql('DROP EXTENSION job_engine CASCADE');
is($rc, 0, 'DROP EXTENSION ... CASCADE discards unfinished jobs') or diag $err;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'job_engine'}),
	'0', 'the extension is gone');

done_testing();

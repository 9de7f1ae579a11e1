# A database that job_engine.databases does not list is said to be unserved
# where it matters (README, troubleshooting "The database is not in
# job_engine.databases"): CREATE EXTENSION and the first submit of each
# session warn, later submits of the session do not, and status() says what
# is wrong there and nothing where all executors run; it also says when the
# library is not preloaded at all.
use strict;
use warnings;

use JobEngineBounds;
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('unserved', max_workers => 2);
$node->safe_psql('postgres', 'CREATE DATABASE elsewhere; CREATE ROLE plain LOGIN;');

my $setup = q{
CREATE FUNCTION public.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('echo', 'public.echo(jsonb)');
GRANT EXECUTE ON FUNCTION public.echo(jsonb) TO plain;
};
my ($rc, $out, $err) = $node->psql('elsewhere', "CREATE EXTENSION job_engine;");
is($rc, 0, 'CREATE EXTENSION succeeds in an unserved database');
like($err, qr/WARNING:  job_engine does not serve database "elsewhere"/, 'and warns that it is not served');
$node->safe_psql('elsewhere', $setup);
$node->safe_psql('postgres', "CREATE EXTENSION job_engine;\n$setup");

($rc, $out, $err) = $node->psql('elsewhere', q{
SET ROLE plain;
SELECT job_engine.submit('echo', '{}');
SELECT job_engine.submit('echo', '{}');
SELECT count(*) FROM job_engine.submit_many('echo', ARRAY['{}', '{}']::jsonb[]);
});
is($rc, 0, 'submits succeed in an unserved database');
my @warnings = ($err =~ /WARNING:  job_engine does not serve database "elsewhere"/g);
is(scalar(@warnings), 1, 'the first submit of the session warns, the others do not');

($rc, $out, $err) = $node->psql('postgres', q{SELECT job_engine.submit('echo', '{}')});
unlike($err, qr/WARNING/, 'a submit in a served database does not warn');

is($node->safe_psql('elsewhere', q{SET ROLE plain;
SELECT served, executors_configured, executors_running, problem LIKE 'job_engine.databases (postgres) does not list this database%'
  FROM job_engine.status()}),
	'f|0|0|t', 'status() in the unserved database says why, to a plain role');
ok(JobEngineBounds::within($node, 'postgres', 60, q{SET ROLE plain;
SELECT served AND supervisor_pid IS NOT NULL AND executors_running = 2
       AND executors_configured = 2 AND problem IS NULL
  FROM job_engine.status()}),
	'status() in the served database: a supervisor, 2 of 2 executors, no problem')
  or diag $node->safe_psql('postgres', 'SET ROLE plain; SELECT * FROM job_engine.status()');

# An executor being replaced is missing from the workers view for a moment
# (the supervisor waits a second before it starts another): status() says
# nothing is wrong then; a shortfall is a problem only when no worker slot
# was found (test/t/196_slot_sharing.pl).
is($node->safe_psql('postgres', q{
SELECT pg_terminate_backend(pid) FROM job_engine.workers LIMIT 1;
DO $$
BEGIN
    FOR i IN 1..500 LOOP
        EXIT WHEN (SELECT count(*) FROM job_engine.workers) < 2;
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT executors_running, problem IS NULL FROM job_engine.status();}),
	"t\n1|t", 'status() while an executor is being replaced: 1 of 2 run, no problem');

# Without job_engine in shared_preload_libraries the library refuses to load,
# and every function that needs it fails; status(), the first thing to ask
# when no job runs, says so in its problem column instead of failing too.
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;
is($node->safe_psql('postgres', q{SET ROLE plain;
SELECT served IS NULL, supervisor_pid IS NULL, executors_configured, executors_running, problem
  FROM job_engine.status()}),
	't|t|0|0|job_engine must be loaded via shared_preload_libraries: Add job_engine to shared_preload_libraries in postgresql.conf and restart the server.',
	'status() without the library preloaded says so, to a plain role');

done_testing();

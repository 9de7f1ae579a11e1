# The library and the installed extension agree on the version
# (src/version.c, docs/upgrading.md).
#
# The library serves the versions it lists: the current one and the previous
# release, whose schema it still works with, so that jobs keep running
# between the restart that loads a new library and ALTER EXTENSION UPDATE.
# At a version it does not list (pg_extension.extversion is set by hand here
# to stand for an extension updated past this library, or one older than
# it serves), the supervisor stops its executors and says so with one
# WARNING per version, and the public functions refuse with SQLSTATE 55000
# and a hint that says what to do.
use strict;
use warnings;

use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = JobEngineNode::new_node('main', max_workers => 1);

$node->safe_psql('postgres', q{
CREATE EXTENSION job_engine VERSION '1.0';
CREATE TABLE effects (job_id bigint);
CREATE FUNCTION record(a jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ INSERT INTO effects VALUES (job_engine.current_job_id()) RETURNING a $$;
SELECT job_engine.register_handler('record', 'record(jsonb)');
});
my $first = $node->safe_psql('postgres', q{SELECT job_engine.submit('record')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $first"),
	'1.0 is served by this library');

my $executors = q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'job_engine executor'};

# set_version(V): the installed version becomes V, by hand; returns the
# server log's size before.
sub set_version
{
	my ($version) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres',
		"UPDATE pg_extension SET extversion = '$version' WHERE extname = 'job_engine'");
	return $offset;
}

# A job submitted while the version is served, due once the executors are
# gone (its run_at is moved by hand then: submit() is refused).
my $later = $node->safe_psql('postgres',
	q{SELECT job_engine.submit('record', run_at => now() + interval '1 hour')});

for my $case (
	[ '0.9', qr/HINT:  Run ALTER EXTENSION job_engine UPDATE in database "postgres"\./ ],
	[ '9.9', qr/HINT:  Restart the server to load the job_engine library installed with version 9\.9\./ ])
{
	my ($version, $hint) = @$case;
	my $offset = set_version($version);

	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT job_engine.submit('record')");
	isnt($rc, 0, "at $version, submit() is refused");
	like($err,
		qr/ERROR:  55000: job_engine \Q$version\E is installed in database "postgres", a version this library does not serve/,
		"at $version, the error says which version");
	like($err, $hint, "at $version, the hint says what to do");

	$node->wait_for_log(
		qr/WARNING:  job_engine \Q$version\E is installed in database "postgres", a version this library does not serve/,
		$offset);
	ok( $node->poll_query_until('postgres', $executors),
		"at $version, the supervisor stopped its executors");
	$node->safe_psql('postgres', "UPDATE job_engine._jobs SET run_at = now() WHERE id = $later");

	# The supervisor looks at least every second: three seconds on there is
	# still one WARNING, and the due job has not run.
	my $since = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	ok( $node->poll_query_until(
			'postgres',
			"SELECT clock_timestamp() > '$since'::timestamptz + interval '3 seconds'"),
		"at $version, three seconds pass");
	my $log = slurp_file($node->logfile, $offset);
	my $warnings = () = $log =~ /WARNING:  job_engine \Q$version\E is installed/g;
	is($warnings, 1, "at $version, the WARNING is given once");
	is($node->safe_psql('postgres', "SELECT state FROM job_engine._jobs WHERE id = $later"),
		'created', "at $version, a due job does not run");
}

# Back at a version served, the jobs run again.
set_version('1.0');
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'succeeded' FROM job_engine.jobs WHERE id = $later"),
	'at 1.0 again, the due job ran');
is($node->safe_psql('postgres', q{SELECT job_engine.submit('record') > 0}),
	't', 'at 1.0 again, submit() works');

$node->stop;
done_testing();

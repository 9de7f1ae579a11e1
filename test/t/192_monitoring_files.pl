# The monitoring files shipped in docs/ (docs/monitoring.md): the Grafana
# dashboard is valid JSON, the alert rules and the sql_exporter collector
# valid YAML (parsed by python3); every query of the collector runs, as a
# member of pg_monitor, and returns the columns it names; every job_engine
# metric the dashboard or the rules use is one the extension exports.
use strict;
use warnings;

use File::Temp qw(tempfile);
use JobEngineNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $docs = "$ENV{TESTDIR}/docs";
$docs = 'docs' unless -d $docs;

# Prints, one per line: "query<TAB>metric<TAB>labels and values<TAB>SQL on one line"
# for the collector, then "uses<TAB>name" for each job_engine_* name the
# dashboard's expressions and the rules' expressions use.
my ($fh, $script) = tempfile(SUFFIX => '.py', UNLINK => 1);
print $fh <<'PY';
import json, re, sys, yaml
docs = sys.argv[1]
dash = json.load(open(docs + '/grafana/job_engine.json'))
rules = yaml.safe_load(open(docs + '/prometheus/alerts.yml'))
coll = yaml.safe_load(open(docs + '/sql_exporter/job_engine.collector.yml'))
exprs = [t['expr'] for p in dash['panels'] for t in p['targets']]
exprs += [v['query']['query'] for v in dash['templating']['list']]
exprs += [r['expr'] for g in rules['groups'] for r in g['rules']]
names = set()
for e in exprs:
    names.update(re.findall(r'\bjob_engine_[a-z_]+', e))
for m in coll['metrics']:
    cols = ','.join(m['key_labels'] + m['values'])
    print('query\t%s\t%s\t%s' % (m['metric_name'], cols, ' '.join(m['query'].split())))
for n in sorted(names):
    print('uses\t' + n)
PY
close $fh;

my ($rc, $out, $err) = (undef, '', '');
$rc = IPC::Run::run([ 'python3', $script, $docs ], '>', \$out, '2>', \$err);
ok($rc, 'python3 parses the dashboard (JSON), the alert rules and the collector (YAML)')
  or diag($err);

my $node = JobEngineNode::new_node('monitoring_files', max_workers => 1);
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION job_engine;
CREATE ROLE prometheus LOGIN;
GRANT pg_monitor TO prometheus;
CREATE FUNCTION noop(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT job_engine.register_handler('noop', 'noop(jsonb)'::regprocedure);
SELECT job_engine.wait(job_engine.submit('noop'), '60 seconds');
});

my %exported = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
	'SELECT DISTINCT metric FROM job_engine.metric_samples');
my @queries = grep { /^query\t/ } split /\n/, $out;
my @uses = grep { /^uses\t/ } split /\n/, $out;
ok(@queries >= 10, 'the collector has a query for each metric family');

for my $q (@queries)
{
	my (undef, $metric, $cols, $sql) = split /\t/, $q;
	my $rows = $node->safe_psql('postgres', "SELECT count(*) FROM ($sql) q",
		extra_params => [ '-U', 'prometheus' ]);
	my $names = $node->safe_psql('postgres',
		"CREATE TEMP VIEW v AS $sql; SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'v'::regclass AND attnum > 0",
		extra_params => [ '-U', 'prometheus' ]);
	is( join(',', sort split /,/, $names),
		join(',', sort split /,/, $cols),
		"collector $metric: its query returns the columns it names ($cols)");
	ok($rows > 0, "collector $metric: its query returns rows as a pg_monitor member");
	ok($exported{$metric}, "collector $metric: the metric is one metric_samples exports");
}

for my $u (@uses)
{
	my (undef, $name) = split /\t/, $u;
	ok($exported{$name}, "dashboard and rules: $name is exported");
}

$node->stop;
done_testing();

#!/usr/bin/env bash
#
# scripts/check_release.sh: check that the files that name job_engine's
# version agree, and that META.json is a valid PGXN distribution file.
#
#   scripts/check_release.sh        prints the version; exits non-zero and
#                                   names each disagreement otherwise
#
# The version is job_engine.control's default_version (e.g. 1.1).  Every
# other file is compared with it, none with a number written here:
#   META.json            version and provides.job_engine.version: the same
#                        as a semantic version (1.1 -> 1.1.0), as PGXN
#                        requires (PGXN Meta Spec 1.0.0, checked here for
#                        its required keys, license, release_status and the
#                        PostgreSQL prerequisite)
#   debian/changelog     the upstream part of the first entry's version
#                        (1.1-1 -> 1.1)
#   debian/pgversions    its lowest version is META.json's PostgreSQL
#                        prerequisite (15+ <-> 15.0.0)
# (That the package's extversion is default_version is checked by
# scripts/check_package.sh, on the installed package.)
#
# Needs bash, sed and perl (JSON::PP is part of perl).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

errors=0
fail() { printf 'check_release: %s\n' "$*" >&2; errors=$((errors + 1)); }

# ---- job_engine.control ----------------------------------------------------------

version="$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" job_engine.control)"
if [ -z "$version" ]; then
	echo "check_release: job_engine.control has no default_version" >&2
	exit 1
fi
# The same version as PGXN writes it: three numbers.
semver="$version"
while [[ "$semver" =~ ^[0-9]+(\.[0-9]+)?$ ]]; do semver="$semver.0"; done
[[ "$semver" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
	fail "default_version '$version' is not one to three numbers separated by dots"

# ---- META.json ---------------------------------------------------------------------

# Prints "key value" lines of the values compared below, or an error per
# problem on stderr (and exits 1).
meta="$(perl -MJSON::PP -e '
	use strict;
	use warnings;
	my @err;
	my $text = do { local $/; open my $fh, "<", "META.json" or die "META.json: $!\n"; <$fh> };
	my $m = eval { JSON::PP->new->relaxed(0)->decode($text) };
	if (!$m) { print STDERR "META.json is not valid JSON: $@"; exit 1; }
	my $semver = qr/^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[A-Za-z][0-9A-Za-z-]*)?$/;
	for my $key (qw(name abstract version maintainer license provides meta-spec)) {
		push @err, "META.json: no \"$key\" (required by the PGXN Meta Spec)" unless exists $m->{$key};
	}
	push @err, "META.json: meta-spec.version is not 1.0.0"
		unless ref $m->{"meta-spec"} eq "HASH" && ($m->{"meta-spec"}{version} // "") eq "1.0.0";
	push @err, "META.json: name is not job_engine" unless ($m->{name} // "") eq "job_engine";
	push @err, "META.json: version \"" . ($m->{version} // "") . "\" is not a semantic version"
		unless ($m->{version} // "") =~ $semver;
	my $maint = $m->{maintainer};
	push @err, "META.json: maintainer is empty"
		unless (ref $maint eq "ARRAY" && @$maint) || (defined $maint && !ref $maint && $maint ne "");
	push @err, "META.json: license is not postgresql (LICENSE is the PostgreSQL Licence)"
		unless ($m->{license} // "") eq "postgresql";
	my $p = ref $m->{provides} eq "HASH" ? $m->{provides}{job_engine} : undef;
	if (ref $p ne "HASH") {
		push @err, "META.json: provides has no job_engine";
		$p = {};
	}
	for my $key (qw(file version)) {
		push @err, "META.json: provides.job_engine has no $key" unless defined $p->{$key};
	}
	push @err, "META.json: provides.job_engine.version is not a semantic version"
		if defined $p->{version} && $p->{version} !~ $semver;
	for my $key (qw(file docfile)) {
		push @err, "META.json: provides.job_engine.$key $p->{$key} does not exist"
			if defined $p->{$key} && !-f $p->{$key};
	}
	my $status = $m->{release_status} // "stable";
	push @err, "META.json: release_status \"$status\" is not stable, testing or unstable"
		unless $status =~ /^(stable|testing|unstable)$/;
	my $pg = eval { $m->{prereqs}{runtime}{requires}{PostgreSQL} } // "";
	push @err, "META.json: prereqs.runtime.requires.PostgreSQL \"$pg\" is not a semantic version"
		unless $pg =~ $semver;
	if (defined $m->{resources}) {
		my %known = (homepage => 1, bugtracker => 1, repository => 1);
		for my $key (keys %{ $m->{resources} }) {
			push @err, "META.json: resources.$key is not homepage, bugtracker or repository"
				unless $known{$key} || $key =~ /^x_/i;
		}
	}
	if (@err) { print STDERR "$_\n" for @err; exit 1; }
	print "version $m->{version}\n";
	print "provides $p->{version}\n";
	print "postgresql $pg\n";
')" || errors=$((errors + 1))
meta_field() { sed -n "s/^$1 //p" <<<"$meta"; }

if [ -n "$meta" ]; then
	[ "$(meta_field version)" = "$semver" ] ||
		fail "META.json's version $(meta_field version) is not default_version $version ($semver)"
	[ "$(meta_field provides)" = "$semver" ] ||
		fail "META.json's provides.job_engine.version $(meta_field provides) is not default_version $version ($semver)"
	pg_min="$(meta_field postgresql)"
	pg_min="${pg_min%%.*}"
	pgversions_min="$(sed -n 's/^\([0-9][0-9]*\)+\{0,1\}[[:space:]]*$/\1/p' debian/pgversions | sort -n | head -n 1)"
	[ "$pgversions_min" = "$pg_min" ] ||
		fail "debian/pgversions starts at PostgreSQL '${pgversions_min}', META.json requires $pg_min"
fi

# ---- debian/changelog --------------------------------------------------------------

# "job-engine (1:1.1-2) unstable; urgency=medium": the upstream version is
# what is left without epoch and Debian revision.
deb_version="$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)"
deb_upstream="${deb_version#*:}"
deb_upstream="${deb_upstream%-*}"
[ "$deb_upstream" = "$version" ] ||
	fail "debian/changelog's version ${deb_version:-(none)} is not default_version $version (add an entry: dch -v $version-1)"

if [ "$errors" -ne 0 ]; then
	echo "check_release: $errors problem(s)" >&2
	exit 1
fi
echo "job_engine $version: job_engine.control, META.json ($semver), debian/changelog ($deb_version) and debian/pgversions agree"

#!/usr/bin/perl
#
# scripts/build_update_script.pl: build an update script of the extension
# (job_engine--A--B.sql) from its hand-written part and the pieces of the
# current install script.  The Makefile runs it; see docs/upgrading.md.
#
#   build_update_script.pl HAND_WRITTEN PIECE... [--whole PIECE...]
#
# The output is HAND_WRITTEN, with its line
#
#   -- @definitions
#
# replaced by every CREATE FUNCTION, CREATE PROCEDURE and CREATE VIEW of the
# PIECEs, in their order, turned into CREATE OR REPLACE, with every COMMENT ON
# among them (a comment is simply set again), followed by every
# statement of the pieces after --whole (the privileges, which must stay
# safe to run twice).  Everything else of the pieces (types, tables,
# indexes, triggers, DO blocks, pg_extension_config_dump calls) is the
# hand-written part's to carry.
#
# CREATE OR REPLACE in an update script replaces only what already belongs to
# the extension: PostgreSQL refuses to replace an object an extension script
# does not own.

use strict;
use warnings;

my $MARKER = '-- @definitions';

die "usage: $0 HAND_WRITTEN PIECE... [--whole PIECE...]\n" if @ARGV < 2;
my $hand_written = shift @ARGV;
my (@pieces, @whole);
my $list = \@pieces;
for my $arg (@ARGV)
{
	if ($arg eq '--whole') { $list = \@whole; next; }
	push @$list, $arg;
}

sub slurp
{
	my ($file) = @_;
	open my $fh, '<', $file or die "$file: $!\n";
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

# The statements of a piece, each with the comments just before it, split at
# semicolons outside comments, quoted strings, quoted identifiers and
# dollar-quoted bodies.  A line of psql (starting with a backslash) is left
# out.
sub statements
{
	my ($file) = @_;
	my $text = slurp($file);
	$text =~ s/^\\[^\n]*\n//mg;
	my @out;
	my $start = 0;
	pos($text) = 0;
	while (pos($text) < length($text))
	{
		if ($text =~ /\G--[^\n]*/gc) { next; }
		if ($text =~ /\G\/\*.*?\*\//gcs) { next; }
		if ($text =~ /\G(?:[eE])?'(?:[^']|'')*'/gc) { next; }
		if ($text =~ /\G"(?:[^"]|"")*"/gc) { next; }
		if ($text =~ /\G(\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)/gc)
		{
			my $tag = $1;
			$text =~ /\G.*?\Q$tag\E/gcs
			  or die "$file: unterminated dollar quote $tag\n";
			next;
		}
		if ($text =~ /\G;/gc)
		{
			push @out, substr($text, $start, pos($text) - $start);
			$start = pos($text);
			next;
		}
		$text =~ /\G[^-\/'"\$;eE]+|\G./gcs;
	}
	my ($rest_comments, $rest) = split_comments(substr($text, $start));
	die "$file: text after the last statement\n" if $rest =~ /\S/;
	return @out;
}

# A statement split into the comments before it and itself.
sub split_comments
{
	my ($stmt) = @_;
	$stmt =~ /^((?:\s*--[^\n]*)*\s*)(.*)$/s;
	return ($1, $2);
}

my @definitions;
for my $piece (@pieces)
{
	for my $stmt (statements($piece))
	{
		my ($comments, $body) = split_comments($stmt);
		next
		  unless $body =~ s/^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW)\b/CREATE OR REPLACE $1/i
		  || $body =~ /^COMMENT\s+ON\b/i;
		push @definitions, $comments . $body;
	}
}

my $generated = "-- Generated from the pieces of the install script by\n"
  . "-- scripts/build_update_script.pl: their functions and views, then "
  . join(', ', @whole) . ".\n";
$generated .= join('', @definitions) . "\n";
$generated .= "\n-- $_\n" . slurp($_) for @whole;

my $text = slurp($hand_written);
my $count = () = $text =~ /^\Q$MARKER\E$/mg;
die "$hand_written: needs the line \"$MARKER\" exactly once (it has $count)\n"
  unless $count == 1;
$text =~ s/^\Q$MARKER\E$/$generated/m;
print $text;

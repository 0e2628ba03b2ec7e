# bench/programs/words.pl: a Perl program of hashes, arrays and string building (perl's own
# allocator is off in Debian's build: every SV goes through malloc), deterministic, printing a
# digest of its results. Run by bench/run.sh under each allocator.
use strict;
use warnings;
my $n = shift // 300000;
my $seed = 4141;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }
my (%count, @keep, $sum);
for my $i (1 .. $n) {
    my $w = join('', map { chr(97 + rnd() % 26) } 1 .. (3 + rnd() % 9));
    $count{$w}++;
    push @keep, $w x (1 + rnd() % 20);
    if (@keep > 5000) { splice(@keep, rnd() % @keep, 1) for 1 .. 2500; }
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
$sum += length($_) for @keep;
my %inv;
push @{ $inv{ $count{$_} } }, $_ for keys %count;
printf "%d %d %d %s\n", scalar(keys %count), $sum, scalar(keys %inv), join(',', @top);

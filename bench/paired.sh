#!/usr/bin/env bash
# paired.sh: BenchmarkHotSession's memory target at 32 connections, measured
# as this shared machine allows: ours-memory, bare, bare-cookie and toy run
# one right after the other, ROUNDS times (default 8), each run REQUESTS
# requests (default 60000), and the ratios of each round and their medians
# printed.
# The three targets of one round run seconds apart, so the machine's speed,
# which moves by tens of percent within minutes, moves them alike.
#
#   cd bench && ./paired.sh [ROUNDS] [REQUESTS]
set -euo pipefail
rounds=${1:-8}
requests=${2:-60000}
cd "$(dirname "$0")"
bin=$(mktemp -d)/hot.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" .
run() {
	"$bin" -test.run '^$' -test.bench "BenchmarkHotSession/conns=32\$/$1\$" \
		-test.benchtime "${requests}x" -test.timeout 10m |
		awk '/^Benchmark/ { for (i = 2; i <= NF; i++) if ($i == "req/s") print $(i-1) }'
}
for r in $(seq "$rounds"); do
	ours=$(run ours-memory)
	bare=$(run bare)
	cookie=$(run bare-cookie)
	toy=$(run toy)
	echo "$r $ours $bare $cookie $toy"
done | awk '
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
BEGIN { print "round  ours-memory   bare  bare-cookie    toy  ours/bare  ours/bare-cookie  bare-cookie/bare  toy/bare" }
{
	n++; a[n] = $2 / $3; b[n] = $2 / $4; c[n] = $4 / $3; d[n] = $5 / $3
	printf "%5d %12d %6d %12d %6d %10.3f %17.3f %17.3f %9.3f\n", $1, $2, $3, $4, $5, a[n], b[n], c[n], d[n]
}
END { printf "median %43.3f %17.3f %17.3f %9.3f\n", median(a, n), median(b, n), median(c, n), median(d, n) }'

#!/usr/bin/env bash
# make fuzz: builds each libFuzzer harness (clang, ASan+UBSan) and runs it
# for FUZZ_SECONDS (default 60) on its corpus in tests/fuzz/corpus/NAME.
# New interesting inputs are added to the corpus; a crash stops the run and
# leaves the input in tests/fuzz/crashes/ (turn it into a regression test).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
SECS=${FUZZ_SECONDS:-60}
OUT=build/fuzz
mkdir -p "$OUT" tests/fuzz/crashes
CFLAGS="-std=c11 -g -O1 -Ilib -fsanitize=fuzzer-no-link,address,undefined $(pkg-config --cflags libpq librabbitmq rdkafka yaml-0.1 libcrypto)"
LIBS="$(pkg-config --libs libpq librabbitmq rdkafka yaml-0.1 libcrypto) -lm -lpthread"
objs=()
while IFS= read -r f; do
	o=$OUT/$(echo "${f#lib/}" | tr / _ | sed 's/\.c$//').o
	clang $CFLAGS -c -o "$o" "$f"
	objs+=("$o")
done < <(find lib -name '*.c' | sort)
status=0
for h in tests/fuzz/fuzz_*.c; do
	name=$(basename "$h" .c)
	corpus=tests/fuzz/corpus/${name#fuzz_}
	# new inputs go to build/fuzz/corpus-NAME; the kept seeds are read only
	mkdir -p "$corpus" "$OUT/corpus-$name"
	clang -std=c11 -g -O1 -Ilib -fsanitize=fuzzer,address,undefined -o "$OUT/$name" "$h" "${objs[@]}" $LIBS
	echo "== $name: ${SECS}s on $corpus"
	if ! "$OUT/$name" -max_total_time="$SECS" -print_final_stats=1 -artifact_prefix=tests/fuzz/crashes/"$name"- \
		"$OUT/corpus-$name" "$corpus" 2>"$OUT/$name.log"; then
		status=1
		echo "$name: CRASH (input in tests/fuzz/crashes/)"
	fi
	grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$OUT/$name.log" | sed "s/^/$name: /"
done
exit $status

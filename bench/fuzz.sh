#!/usr/bin/env bash
# Fuzzes what liber serve and the store take from outside: request bodies of events
# (decode_events) and partition-rule texts (PartitionRule::parse), with libFuzzer and
# AddressSanitizer + UBSan (Debian's clang). HTTP/1.1 request parsing itself is
# cpp-httplib's, which Debian ships compiled: it runs in the service's tests, not here.
#   bench/fuzz.sh [SECONDS]   (default 300) prints executions, coverage and findings
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
out="${LIBER_FUZZ_DIR:-$HOME/.cache/liber/fuzz}"
mkdir -p "$out/corpus" "$out/findings"
clang="$(command -v clang++-14 || command -v clang++ || true)"
if [ -z "$clang" ]; then echo "fuzz.sh: needs clang (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; fi
"$clang" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iinclude -Isrc/include fuzz/events_fuzz.cpp src/serve/event_decoder.cpp src/common/error.cpp \
  src/data/vocab.cpp src/ubsp/partitioner.cpp -lfmt -o "$out/events_fuzz"
cp -n fuzz/corpus/* "$out/corpus/" 2>/dev/null || true
echo "fuzz: $seconds s of events_fuzz (corpus $out/corpus, findings $out/findings)"
set +e
"$out/events_fuzz" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
  -artifact_prefix="$out/findings/" "$out/corpus" 2> "$out/log"
rc=$?
set -e
grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)" "$out/log" || true
grep -E "^#[0-9]+ +DONE" "$out/log" | tail -1 || true
findings=$(find "$out/findings" -type f | wc -l)
echo "findings: $findings (in $out/findings)"
[ "$rc" = 0 ] && [ "$findings" = 0 ]

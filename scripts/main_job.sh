#!/usr/bin/env bash
# The main job: the whole LIBER pipeline on the embedded defaults (Gemma 3 270M in process),
# on a random sample of ML-1M users, ending with the experiment table. One store holds the
# three variants: the cascade, KAR-style (first 30 behaviors) and no-cascade. Every record
# gets the verifier's verdict (liber learn --quality prints the rates); the knowledge
# encoder is all-MiniLM-L6-v2. The table shows each backbone alone, with the content vectors
# (no LLM), with the LLM's verified records, with both, and the random and shuffled
# controls, each difference with a 95% paired-bootstrap interval.
#
#   ingest (UBSP, K = 50) -> learn (UIL: 3 variants) -> encode (UIF vectors) -> experiment
#
# usage: scripts/main_job.sh [DATA_DIR] [USERS]
#   DATA_DIR  ML-1M files (default ../shared/data/ml-1m-partial, the developers' copy:
#             ratings of users 1-2999 only); USERS  sample size (default 30).
# State lives in $LIBER_HOME/state/main-job (default ~/.cache/liber): every stage is
# incremental, so a rerun (or a run after Ctrl-C) redoes nothing finished.
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${1:-../shared/data/ml-1m-partial}"
users="${2:-30}"
state="${LIBER_HOME:-$HOME/.cache/liber}/state/main-job"
out="runs/main-job"
mkdir -p "$state" "$out"
liber=build/liber

echo "== ingest: UBSP partitions (K = 50) into $state/store"
$liber ingest --dataset ml-1m --data-dir "$data_dir" --store "$state/store" --quiet
echo "== learn: the UIL cascade over $users random users (seed 42)"
$liber learn --store "$state/store" --sample "$users" --seed 42
$liber learn --store "$state/store" --list-learned "$state/learned.txt"
echo "== learn: variant kar (each user's first 30 behaviors) and no-cascade, same users"
$liber learn --store "$state/store" --variant kar --partitions first:30 --user-list "$state/learned.txt"
$liber learn --store "$state/store" --variant no-cascade --no-cascade --user-list "$state/learned.txt"
echo "== verifier: verified records per user (rejected ones never reach the CTR model)"
$liber learn --store "$state/store" --quality | tail -3
echo "== encode: UIF knowledge vectors (verified records, item texts; all-MiniLM-L6-v2)"
# --replace: a store encoded by an older liber (Gemma's hidden states) is re-encoded once.
$liber encode --store "$state/store" --replace
echo "== experiment: each backbone alone, with content, LLM and both, and the controls, 3 seeds"
$liber experiment --config configs/main-job.json --out "$out" --no-progress \
  --store "$state/store"

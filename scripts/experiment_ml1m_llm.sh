#!/usr/bin/env bash
# The LLM variant on ML-1M in one resumable command: as many users as an LLM pass of MINUTES
# learns, then the experiment on them beside the content vectors and both controls.
#
#   ingest (K = 50) -> encode item texts -> learn (cascade, USERS random users, seed 42, in
#   work order) for at most MINUTES -> encode the verified records -> liber experiment
#   (configs/experiment-ml-1m-llm.json) on the users whose partitions are all learned
#
# usage: scripts/experiment_ml1m_llm.sh [DATA_DIR] [MINUTES] [CANDIDATES] [USERS]
#   DATA_DIR    ML-1M files (default ../shared/data/ml-1m-partial: users 1-2999 only)
#   MINUTES     the LLM pass's budget (default 90); once spent it is not spent again, so a
#               rerun keeps the same population (delete $state/llm-pass.done to learn more)
#   CANDIDATES  liber learn --candidates (default 1: on Gemma 3 270M the guard costs 2.8x
#               the calls for +2.5 points of verified rate, docs/results.md)
#   USERS       the random sample the pass works through (default 1000)
# State: the store of scripts/experiment_ml1m_content.sh ($LIBER_STATE/ml-1m). Output:
# runs/experiment-ml-1m-llm ($LIBER_OUT). Ctrl-C stops any stage; a rerun goes on.
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${1:-../shared/data/ml-1m-partial}"
minutes="${2:-90}"
candidates="${3:-1}"
users="${4:-1000}"
out="${LIBER_OUT:-runs/experiment-ml-1m-llm}"
source scripts/ml1m_store.sh

ingest_and_encode_items

if [ ! -f "$state/llm-pass.done" ]; then
  stage "learn: $users random users (seed 42), --candidates $candidates, for at most $minutes min"
  # The budget ends the pass as Ctrl-C would: in-flight partitions are recorded, users
  # finish in work order, so the learned users are whole. 130 = stopped by the budget.
  status=0
  timeout --preserve-status --signal=INT "${minutes}m" \
    $liber learn --store "$store" --sample "$users" --seed 42 --candidates "$candidates" \
    | grep -v '^record ' || status=$?
  [ "$status" = 0 ] || [ "$status" = 130 ] || exit "$status"
  date -u +%FT%TZ > "$state/llm-pass.done"
fi
$liber learn --store "$store" --quality | tail -2
$liber encode --store "$store"

stage "experiment  [$out]"
$liber experiment --config configs/experiment-ml-1m-llm.json --out "$out" --no-progress --store "$store"
stage "done: $out/results.md, $out/auc.png, $out/results.json"

#!/usr/bin/env bash
# Content vectors and the two controls on EVERY ML-1M user, no LLM, in one resumable command:
#
#   ingest (K = 50) -> encode (item text vectors, all-MiniLM-L6-v2)
#   liber experiment (configs/experiment-ml-1m-content.json): backbone x {base, random,
#   shuffled, content} x 3 seeds, each difference with a paired-bootstrap 95% interval
#
# usage: scripts/experiment_ml1m_content.sh [DATA_DIR]
#   DATA_DIR  ML-1M files (default ../shared/data/ml-1m-partial: users 1-2999 only)
# State: the same store as scripts/experiment_ml1m.sh ($LIBER_STATE/ml-1m, default
# ~/.cache/liber/state), so its LLM variants can be added to it later. Output:
# runs/experiment-ml-1m-content ($LIBER_OUT). About 2 hours of training on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${1:-../shared/data/ml-1m-partial}"
out="${LIBER_OUT:-runs/experiment-ml-1m-content}"
source scripts/ml1m_store.sh

ingest_and_encode_items
stage "experiment  [$out]"
$liber experiment --config configs/experiment-ml-1m-content.json --out "$out" --no-progress --store "$store"
stage "done: $out/results.md, $out/auc.png, $out/results.json"

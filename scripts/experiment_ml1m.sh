#!/usr/bin/env bash
# The LIBER experiment on ML-1M, every stage, in one resumable command, in ONE store:
#
#   ingest (K = 50) -> learn USERS random users (seed 42), variant "cascade" -> encode
#   variant "kar": the same users, each one's first 30 behaviors (--partitions first:30)
#   variant "no-cascade": NOCASCADE_USERS of them, every partition summarised alone
#   liber experiment (configs/experiment-ml-1m.json): backbone x variant x 3 seeds
#
# usage: scripts/experiment_ml1m.sh [DATA_DIR] [USERS] [NOCASCADE_USERS]
#   DATA_DIR  ML-1M files (default ../shared/data/ml-1m-partial: users 1-2999 only);
#   USERS  default 1000; NOCASCADE_USERS  default 300.
# State: $LIBER_STATE (default $LIBER_HOME/state, LIBER_HOME default ~/.cache/liber). Every
# stage is incremental: Ctrl-C stops the script (liber exits 130 after saving what is done)
# and a rerun goes on where it stopped. On the 2-core development machine the LLM stages
# take hours (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${1:-../shared/data/ml-1m-partial}"
users="${2:-1000}"
nocascade_users="${3:-300}"
out="${LIBER_OUT:-runs/experiment-ml-1m}"
source scripts/ml1m_store.sh

stage "ingest (K = 50), learn $users users (cascade), encode  [$store]"
$liber ingest --dataset ml-1m --data-dir "$data_dir" --store "$store" --quiet
$liber learn --store "$store" --sample "$users" --seed 42
$liber encode --store "$store"
$liber learn --store "$store" --list-learned "$state/learned.txt"

stage "variant kar: one summary of the first 30 behaviors of the same users"
$liber learn --store "$store" --variant kar --partitions first:30 --user-list "$state/learned.txt"

stage "variant no-cascade: $nocascade_users of the users, each partition summarised alone"
# The lowest ids of the learned users: a fixed subset once that many are learned.
# (sed, not head: head would close the pipe early, and pipefail would end the script.)
sort -n "$state/learned.txt" | sed -n "1,${nocascade_users}p" > "$state/nocascade-users.txt"
$liber learn --store "$store" --variant no-cascade --no-cascade --user-list "$state/nocascade-users.txt"
$liber encode --store "$store"

stage "experiment  [$out]"
$liber experiment --config configs/experiment-ml-1m.json --out "$out" --no-progress --store "$store"
stage "done: $out/results.md, $out/auc.png, $out/results.json, $out/vectors/"

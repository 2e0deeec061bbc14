#!/usr/bin/env bash
# The LIBER experiment on ML-1M, every stage, in one resumable command:
#
#   cascade store (K = 50): ingest -> learn USERS random users (seed 42) -> encode
#   KAR-style store (first 30 behaviors): ingest --rule-k 30 -> learn --max-partitions 1
#                                          for the same users -> encode
#   no-cascade store (K = 50): learn --no-cascade for NOCASCADE_USERS of them -> encode
#   liber experiment (configs/experiment-ml-1m.json): backbone x variant x 3 seeds
#
# usage: scripts/experiment_ml1m.sh [DATA_DIR] [USERS] [NOCASCADE_USERS]
#   DATA_DIR  ML-1M files (default ../shared/data/ml-1m-partial: users 1-2999 only);
#   USERS  default 1000; NOCASCADE_USERS  default 300.
# State: $LIBER_STATE (default $LIBER_HOME/state, LIBER_HOME default ~/.cache/liber). Every
# stage is incremental: Ctrl-C stops the script (liber exits 130 after saving what is done)
# and a rerun goes on where it stopped. On the 2-core development machine the LLM stages
# take hours (see README, "Interest fusion (UIF) and the experiment").
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${1:-../shared/data/ml-1m-partial}"
users="${2:-1000}"
nocascade_users="${3:-300}"
state="${LIBER_STATE:-${LIBER_HOME:-$HOME/.cache/liber}/state}"
out="${LIBER_OUT:-runs/experiment-ml-1m}"
cascade="$state/ml-1m" kar="$state/ml-1m-kar" nocascade="$state/ml-1m-nocascade"
mkdir -p "$state" "$out"
liber=build/liber
data=(--dataset ml-1m --data-dir "$data_dir")
stage() { echo "== $(date +%H:%M:%S) $*"; }

stage "cascade: ingest (K = 50), learn $users users, encode  [$cascade]"
$liber ingest "${data[@]}" --store "$cascade" --quiet
$liber learn "${data[@]}" --store "$cascade" --sample "$users" --seed 42 --no-items
$liber encode --store "$cascade" --no-items
$liber learn --store "$cascade" --list-learned "$state/learned.txt"

stage "KAR-style: one summary of the first 30 behaviors of the same users  [$kar]"
$liber ingest "${data[@]}" --store "$kar" --rule-k 30 --quiet
$liber learn "${data[@]}" --store "$kar" --max-partitions 1 --user-list "$state/learned.txt" --no-items
$liber encode --store "$kar" --no-items

stage "no-cascade: $nocascade_users of the users, each partition summarised alone  [$nocascade]"
# The lowest ids of the learned users: a fixed subset once that many are learned.
# (sed, not head: head would close the pipe early, and pipefail would end the script.)
sort -n "$state/learned.txt" | sed -n "1,${nocascade_users}p" > "$state/nocascade-users.txt"
$liber ingest "${data[@]}" --store "$nocascade" --quiet
$liber learn "${data[@]}" --store "$nocascade" --no-cascade --user-list "$state/nocascade-users.txt" --no-items
$liber encode --store "$nocascade" --no-items

stage "experiment  [$out]"
$liber experiment "${data[@]}" --config configs/experiment-ml-1m.json --out "$out" --no-progress \
  --store "$cascade" --kar-store "$kar" --nocascade-store "$nocascade"
stage "done: $out/results.md, $out/auc.png, $out/results.json, $out/vectors/"

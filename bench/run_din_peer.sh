#!/usr/bin/env bash
# DIN peer benchmark: liber vs FuxiCTR 2.3.10 on ML-1M (users 1-2999 only).
# Runs the idempotent setup (system packages, the bench venv with FuxiCTR, the liber
# build), then bench/fuxictr_din.py with the defaults below; extra arguments go to the
# script and win over the defaults, e.g.
#   bench/run_din_peer.sh --max-users 300        # quick end-to-end check
#   bench/run_din_peer.sh --epochs 5 --json-out /tmp/din_peer.json
# Defaults: all cores on both sides, embedding 16, batch 1024, lr 1e-3, at most 3 epochs
# (patience 2), 10 history items. On a quiet 2-core machine the full run takes a few
# minutes; while other jobs share the cores both sides slow down a lot (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --bench >&2   # keep stdout for the report

LIBER_HOME="${LIBER_HOME:-$HOME/.cache/liber}"
python="$LIBER_HOME/bench-venv/bin/python"
data_dir="${LIBER_ML1M_DIR:-../shared/data/ml-1m-partial}"

exec "$python" bench/fuxictr_din.py \
  --liber build/liber \
  --data-dir "$data_dir" \
  --threads "$(nproc)" \
  --embedding-dim 16 \
  --batch-size 1024 \
  --lr 1e-3 \
  --epochs 3 \
  --patience 2 \
  --history 10 \
  "$@"

#!/usr/bin/env bash
# DIEN and xDeepFM peer benchmark: liber vs FuxiCTR 2.3.10 on ML-1M (users 1-2999 only).
#   bench/run_backbone_peer.sh [JSON_OUT] [options of bench/fuxictr_peer.py]
# Uses the bench venv and build/liber as they are; only when one of them is missing does it
# run the idempotent setup (scripts/setup.sh --bench, with --no-build when build/liber
# exists). Then bench/fuxictr_peer.py with the defaults below; the comparison goes to stdout
# and as JSON to JSON_OUT (default runs/backbone-peer.json). Extra options go to the script
# and win over the defaults, e.g.
#   bench/run_backbone_peer.sh /tmp/peer.json --model dien
#   bench/run_backbone_peer.sh /tmp/peer.json --max-users 300 --epochs 2   # quick check
# Defaults: both models, all cores on both sides, embedding 16, batch 1024, lr 1e-3, at most
# 5 epochs with early stopping (patience 2), 10 history items, seed 42. liber's DIEN runs
# without its auxiliary loss (FuxiCTR's has none); bench/fuxictr_peer.py's header lists
# every difference between the two sides.
set -euo pipefail
cd "$(dirname "$0")/.."

json_out=runs/backbone-peer.json
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
  json_out="$1"
  shift
fi

LIBER_HOME="${LIBER_HOME:-$HOME/.cache/liber}"
python="$LIBER_HOME/bench-venv/bin/python"
data_dir="${LIBER_ML1M_DIR:-../shared/data/ml-1m-partial}"

if ! { [ -x "$python" ] && "$python" -c "import fuxictr, model_zoo.LongCTR.DIEN" 2>/dev/null; }; then
  if [ -x build/liber ]; then
    scripts/setup.sh --bench --no-build >&2   # keep stdout for the report
  else
    scripts/setup.sh --bench >&2
  fi
elif [ ! -x build/liber ]; then
  scripts/setup.sh >&2
fi
backbones="$(build/liber train --help 2>/dev/null | grep -e "--backbones" || true)"
if [[ "$backbones" != *dien* || "$backbones" != *xdeepfm* ]]; then
  echo "run_backbone_peer.sh: build/liber has no dien or xdeepfm backbone; rebuild it (scripts/setup.sh)" >&2
  exit 1
fi
mkdir -p "$(dirname "$json_out")"

exec "$python" bench/fuxictr_peer.py \
  --liber build/liber \
  --data-dir "$data_dir" \
  --model both \
  --threads "$(nproc)" \
  --embedding-dim 16 \
  --batch-size 1024 \
  --lr 1e-3 \
  --epochs 5 \
  --patience 2 \
  --history 10 \
  --seed 42 \
  --json-out "$json_out" \
  "$@"

#!/usr/bin/env bash
# LIBER vectors in FuxiCTR through the Python package: FuxiCTR's DIN with and without them,
# beside liber's DIN with and without them, on the ML-1M store (users 1-2999 only). Runs the
# idempotent setup (bench venv with FuxiCTR), installs this checkout's wheel into the bench
# venv, makes the store when missing (ingest K = 50 + encode, as the experiment scripts), then
# bench/fuxictr_din_liber.py; extra arguments go to the script, e.g.
#   bench/run_din_liber.sh --epochs 1                 # a quicker pass
#   bench/run_din_liber.sh --json-out /tmp/din_liber.json
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --bench >&2   # keep stdout for the report

LIBER_HOME="${LIBER_HOME:-$HOME/.cache/liber}"
venv="$LIBER_HOME/bench-venv"
if [ ! -f build/wheel/liber-*.whl ] || [ -n "$(find python CMakeLists.txt src include -newer build/wheel -print -quit)" ]; then
  rm -rf build/wheel
  "$venv/bin/pip" wheel -q --no-deps -w build/wheel . >&2
fi
"$venv/bin/pip" install -q --no-deps --force-reinstall build/wheel/liber-*.whl >&2

data_dir="${LIBER_ML1M_DIR:-../shared/data/ml-1m-partial}"
out="$(mktemp -d)"
. scripts/ml1m_store.sh      # sets $store (the experiments' shared ML-1M store)
ingest_and_encode_items >&2

exec "$venv/bin/python" bench/fuxictr_din_liber.py --store "$store" --liber build/liber \
  --threads "$(nproc)" "$@"

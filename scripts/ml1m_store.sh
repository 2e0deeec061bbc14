# Sourced by the ML-1M experiment scripts (experiment_ml1m*.sh): the one store they share,
# and its first stage. The caller sets data_dir and out.
state="${LIBER_STATE:-${LIBER_HOME:-$HOME/.cache/liber}/state}"
store="$state/ml-1m"
liber=build/liber
mkdir -p "$state" "$out"
stage() { echo "== $(date +%H:%M:%S) $*"; }

# ingest (K = 50) and the item text vectors (the content vectors' input); no-ops once done.
ingest_and_encode_items() {
  stage "ingest (K = 50) and encode the item texts  [$store]"
  $liber ingest --dataset ml-1m --data-dir "$data_dir" --store "$store" --quiet
  $liber encode --store "$store"
}

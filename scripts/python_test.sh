#!/usr/bin/env bash
# The Python package's tests: builds the wheel (pip wheel .: what CI ships and what a user's
# pip install . builds), installs it into its own venv under $LIBER_HOME and runs pytest
# against the CLI that scripts/setup.sh built. Run setup first.
set -euo pipefail
cd "$(dirname "$0")/.."
home="${LIBER_HOME:-$HOME/.cache/liber}"
venv="$home/py-venv"
# Debian's python3, numpy and python3-torch (the torch of the libtorch liber links, which
# liber.fuse's tests compare against) seen through --system-site-packages.
if ! grep -qs "include-system-site-packages = true" "$venv/pyvenv.cfg"; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
rm -rf build/wheel
"$venv/bin/pip" wheel -q --no-deps -w build/wheel .
wheel="$(ls build/wheel/liber-*.whl)"
echo "python_test: built $wheel"
# numpy < 2: torch 1.13 is built against numpy 1.
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"
"$venv/bin/pip" install -q "$wheel[test]" "numpy<2"
LIBER_CLI="$PWD/build/liber" "$venv/bin/python" -m pytest -q python/tests

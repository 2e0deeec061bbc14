#!/usr/bin/env bash
# The Python package's tests: installs the package (pip install .) into its own venv under
# $LIBER_HOME and runs pytest against the CLI that scripts/setup.sh built. Run setup first.
set -euo pipefail
cd "$(dirname "$0")/.."
home="${LIBER_HOME:-$HOME/.cache/liber}"
venv="$home/py-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q ".[test]"
LIBER_CLI="$PWD/build/liber" "$venv/bin/python" -m pytest -q

#!/usr/bin/env bash
# Create the project's virtual environment with Python 3.10 and install the pinned dependencies.
# lava-nc 0.10.0 does not run on Python 3.11+ (dataclass mutable defaults), so 3.10 is required.
set -euo pipefail
VENV="${1:-.venv}"

find_python310() {
    if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys' >/dev/null 2>&1; then
        command -v python3.10; return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        for p in "$(pyenv root)"/versions/3.10*/bin/python3.10; do
            [ -x "$p" ] && { echo "$p"; return 0; }
        done
    fi
    for p in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
    echo "using existing $VENV ($("$VENV/bin/python" --version))"
else
    PY310="$(find_python310)" || {
        echo "error: lava-nc 0.10.0 needs Python 3.10; install it (e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10-venv') and run make again" >&2
        exit 2
    }
    echo "creating $VENV with $PY310"
    rm -rf "$VENV"
    "$PY310" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test,bench]"
"$VENV/bin/python" -c "import torch, norse, lava, lava.lib.dl.slayer, tonic, onnxruntime" \
    || { echo "error: dependency installation failed (see pip output above)" >&2; exit 2; }
echo "environment ready: $VENV"

#!/usr/bin/env bash
# Create the local environment: .venv with the host tools and the MicroPython unix port,
# plus umqtt.simple for the unix port in .venv/mplib (see docs/development.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-host.txt
# umqtt.simple: the package index only has a source archive without build metadata, which pip
# downloads and then refuses; keep the unpacked tree and copy the one module out of it.
MPLIB="$VENV/mplib"
if [ ! -f "$MPLIB/umqtt/simple.py" ]; then
    tmp=$(mktemp -d)
    TMPDIR=$tmp "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --no-clean \
        -d "$tmp/dl" micropython-umqtt.simple==1.3.4 >/dev/null 2>&1 || true
    src=$(find "$tmp" -path '*/umqtt/simple.py' | head -n 1)
    if [ -z "$src" ]; then
        tar -xzf "$(find "$tmp/dl" -name '*.tar.gz' | head -n 1)" -C "$tmp"
        src=$(find "$tmp" -path '*/umqtt/simple.py' | head -n 1)
    fi
    mkdir -p "$MPLIB/umqtt"
    cp "$src" "$MPLIB/umqtt/simple.py"
    rm -rf "$tmp"
fi
"$VENV/bin/micropython" -c "import sys; print('micropython', sys.version)" >/dev/null
touch "$VENV/.stamp"

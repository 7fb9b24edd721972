#!/bin/sh
# Builds OUT_DIR/echo-c.wasm (default: this directory).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../sdk/c/bin/wsserver-cc" --stateful -o "${1:-$here}/echo-c.wasm" "$here/echo.c"

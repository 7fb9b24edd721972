#!/bin/sh
# Builds OUT_DIR/chat-c.wasm (default: this directory).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../sdk/c/bin/wsserver-cc" --stateful -o "${1:-$here}/chat-c.wasm" "$here/chat.c"

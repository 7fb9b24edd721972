#!/bin/sh
# Builds {{name}}.wasm, the component wsserver loads.
set -e
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{name_snake}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"

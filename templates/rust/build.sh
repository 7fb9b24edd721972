#!/bin/sh
# Builds {{name}}.wasm, the component wsserver loads.
set -e
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --target wasm32-wasip2
built="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{name_snake}}.wasm"
if [ ! -f "$built" ]; then
  echo "build.sh: cargo wrote no $built: Cargo.toml needs [lib] crate-type = [\"cdylib\"]" >&2
  exit 1
fi
cp "$built" {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"

#!/usr/bin/env bash
# The per-language figures of bench/RESULTS.md ("Plugins by language"):
# builds the example plugins (make plugins) and the componentize-js variant
# of echo-js, prints the cost table (measure.py, in wasmtime's Python
# bindings from the test environment `make setup` creates), then runs the
# echo scenarios through the server for each language's echo plugin
# (bench/languages/bench.toml). Extra arguments go to the driver.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=$(cargo metadata --manifest-path "$repo/Cargo.toml" --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export CARGO_TARGET_DIR=$target

make -C "$repo" plugins
sm="$target/sdk-plugins/echo-js-starlingmonkey.wasm"
[[ -f $sm ]] || "$here/build-echo-starlingmonkey.sh" "$sm"

make -C "$repo" setup
rust_plugins="$target/plugin-tests"
cargo build --release --target wasm32-wasip2 --manifest-path "$repo/plugins/Cargo.toml" --target-dir "$rust_plugins"
"$target/test-venv/bin/python" "$here/measure.py" \
  "echo (Rust)=$rust_plugins/wasm32-wasip2/release/echo.wasm" \
  "echo-js (QuickJS)=$target/sdk-plugins/echo-js.wasm" \
  "echo-js (StarlingMonkey)=$sm" \
  "echo-python=$target/sdk-plugins/echo-python.wasm"

# Compile each component into the server's cache once, so that the driver's
# servers start within its 15 s.
cargo build --release --manifest-path "$repo/Cargo.toml" -p wsserver
args=()
for name in echo-js echo-js-starlingmonkey echo-python; do
  args+=(--plugin "/$name=$target/sdk-plugins/$name.wasm")
done
ready=$(mktemp)
"$target/release/wsserver" --listen 127.0.0.1:0 "${args[@]}" >"$ready" &
server=$!
until grep -q '^listening' "$ready"; do
  kill -0 "$server" 2>/dev/null || { echo "wsserver did not start" >&2; exit 1; }
  sleep 0.5
done
kill "$server"
rm -f "$ready"

BENCH_CONFIG="$here/bench.toml" exec "$repo/bench/run.sh" "$@"

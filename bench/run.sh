#!/usr/bin/env bash
# Builds the bench binaries (release) and runs the driver over bench.toml.
# Extra arguments go to the driver, e.g. --repeat 5 --duration 5;
# BENCH_CONFIG names another configuration (bench/languages/bench.toml).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Where cargo puts each workspace's builds (CARGO_TARGET_DIR, a cargo
# config, or the default).
target_of() {
  cargo metadata --manifest-path "$1" --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
target="$(target_of "$here/Cargo.toml")"
cargo build --release --manifest-path "$here/Cargo.toml" --bins
# wsserver itself, from the root workspace, next to the bench binaries.
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --manifest-path "$here/../Cargo.toml" -p wsserver
root_target="$(target_of "$here/../Cargo.toml")"
if [[ "$root_target/release/wsserver" -ef "$target/release/wsserver" ]]; then :; else
  ln -sf "$root_target/release/wsserver" "$target/release/wsserver"
fi
exec "$target/release/driver" --config "${BENCH_CONFIG:-$here/bench.toml}" --out "$here/out" "$@"

#!/usr/bin/env bash
# Builds the bench binaries and wsserver (release), links wsserver next to
# them, and prints the directory holding them all. Used by run.sh and
# cluster.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Where cargo puts each workspace's builds (CARGO_TARGET_DIR, a cargo
# config, or the default).
target_of() {
  cargo metadata --manifest-path "$1" --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
target="$(target_of "$here/Cargo.toml")"
cargo build --release --manifest-path "$here/Cargo.toml" --bins >&2
# wsserver itself, from the root workspace, next to the bench binaries.
rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build --release --manifest-path "$here/../Cargo.toml" -p wsserver >&2
root_target="$(target_of "$here/../Cargo.toml")"
if [[ "$root_target/release/wsserver" -ef "$target/release/wsserver" ]]; then :; else
  ln -sf "$root_target/release/wsserver" "$target/release/wsserver"
fi
echo "$target/release"

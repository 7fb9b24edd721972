#!/usr/bin/env bash
# Builds the bench binaries (release) and runs the driver over bench.toml.
# Extra arguments go to the driver, e.g. --repeat 5 --duration 5;
# BENCH_CONFIG names another configuration (bench/languages/bench.toml).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$("$here/build.sh")"
exec "$bin/driver" --config "${BENCH_CONFIG:-$here/bench.toml}" --out "$here/out" "$@"

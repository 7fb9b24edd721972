#!/usr/bin/env bash
# Builds one plugin project with its language's SDK build script
# (sdk/LANG/build.sh), reusing an earlier build of the same inputs:
#
#     sdk/build-plugin.sh LANG PROJECT_DIR OUT.wasm
#
# Components are kept by the SHA-256 of their inputs (the project's files,
# the language's SDK, the WIT) in $WSSERVER_BUILD_CACHE (default
# ~/.cache/wsserver/built-plugins), outside the checkout, so a machine
# builds each version once however many clones and CI runs it sees. The
# SDK's install-toolchain.sh pins the toolchain version, so it is an input.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 LANG PROJECT_DIR OUT.wasm" >&2
  exit 2
fi
lang=$1 project=$(cd "$2" && pwd) out=$3
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${WSSERVER_BUILD_CACHE:-$HOME/.cache/wsserver/built-plugins}

# Paths are hashed relative to the project and the checkout, so the key
# does not depend on where the checkout is.
key=$(
  find "$project" "$repo/sdk/$lang" "$repo/wit" -type f \
    -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -not -path '*/.pytest_cache/*' -print0 |
    sort -z | xargs -0 sha256sum | sed -e "s#  $project/#  project/#" -e "s#  $repo/#  #" |
    sha256sum | cut -c1-32
)
cached=$cache/$(basename "$project")-$key.wasm
mkdir -p "$cache" "$(dirname "$out")"
if [[ ! -f $cached ]]; then
  "$repo/sdk/$lang/build.sh" "$project" "$cached.partial"
  mv "$cached.partial" "$cached"
else
  echo "$(basename "$out"): unchanged, from $cached"
fi
cp "$cached" "$out"

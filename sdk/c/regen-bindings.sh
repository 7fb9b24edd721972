#!/usr/bin/env bash
# Regenerates bindings/ from the repository's wit/plugin.wit with
# wit-bindgen's C generator. Run it after the WIT changes; `make test`
# checks that the committed bindings match (sdk/c/tests).
#
#   sdk/c/install-toolchain.sh     # once: installs the pinned wit-bindgen
#   sdk/c/regen-bindings.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
out="${1:-$here/bindings}"
bindgen="${WIT_BINDGEN:-${WSSERVER_TOOLS:-$HOME/.cache/wsserver/tools}/bin/wit-bindgen}"
if [[ ! -x "$bindgen" ]]; then
  echo "wit-bindgen not found: run sdk/c/install-toolchain.sh (or set WIT_BINDGEN)" >&2
  exit 1
fi
# One set per world: `plugin`, and `stateful-plugin` (which also exports
# lifecycle). The SDK picks one at build time (wsserver-cc --stateful).
for world in plugin stateful-plugin; do
  dir="$out/${world//-/_}"
  rm -rf "$dir" && mkdir -p "$dir"
  "$bindgen" c --world "$world" --out-dir "$dir" "$wit" >/dev/null
done

#!/usr/bin/env bash
# Builds a Python wsserver plugin into a WebAssembly component with
# componentize-py (CPython inside the component).
#
#     sdk/python/build.sh PROJECT_DIR OUT.wasm
#
# PROJECT_DIR holds a pyproject.toml with a [tool.wsserver] table: `module`
# names the module that defines `Handler` (and `Lifecycle`) with
# `export_plugin` (default "app"), `world` is "plugin" (the default) or
# "stateful-plugin". The module imports `wsserver_sdk`: installed in the
# environment, or else this SDK's copy. componentize-py comes from PATH or
# the toolchain directory that install-toolchain.sh fills.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PROJECT_DIR OUT.wasm" >&2
  exit 2
fi
project=$(cd "$1" && pwd)
out=$2
sdk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
toolchains=${WSSERVER_TOOLCHAINS:-$HOME/.cache/wsserver/toolchains}

# The contract: the published package carries wit/, a checkout has it at
# the repository root.
wit=${WSSERVER_WIT:-}
for candidate in "$sdk/src/wsserver_sdk/wit" "$sdk/../../wit"; do
  [[ -z $wit && -f $candidate/plugin.wit ]] && wit=$(cd "$candidate" && pwd)
done
[[ -n $wit ]] || { echo "build.sh: wit/plugin.wit not found (set WSSERVER_WIT)" >&2; exit 1; }

cpy=$(PATH="$PATH:$toolchains/python/bin" command -v componentize-py || true)
if [[ -z $cpy ]]; then
  echo "build.sh: componentize-py not found; run $sdk/install-toolchain.sh or 'pip install componentize-py'" >&2
  exit 1
fi

read -r module world < <(python3 -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    settings = tomllib.load(f).get("tool", {}).get("wsserver", {})
print(settings.get("module", "app"), settings.get("world", "plugin"))
' "$project/pyproject.toml")

mkdir -p "$(dirname "$out")"
cd "$project"
"$cpy" -d "$wit" -w "$world" componentize "$module" -p . -p "$sdk/src" -o "$out" >/dev/null
echo "built $out ($(stat -c %s "$out") bytes, world $world)"

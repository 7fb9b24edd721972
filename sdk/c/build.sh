#!/usr/bin/env bash
# Builds a C wsserver plugin project into a component:
#
#     sdk/c/build.sh PROJECT_DIR OUT.wasm
#
# Compiles every PROJECT_DIR/*.c with bin/wsserver-cc, adding the arguments
# in PROJECT_DIR/wsserver-cc.args if there is one (e.g. `--stateful`, or
# clang flags).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PROJECT_DIR OUT.wasm" >&2
  exit 2
fi
project=$(cd "$1" && pwd)
out=$2
sdk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
args=()
if [[ -f $project/wsserver-cc.args ]]; then
  read -r -a args <"$project/wsserver-cc.args"
fi
sources=("$project"/*.c)
[[ -f ${sources[0]} ]] || { echo "build.sh: no .c file in $project" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$sdk/bin/wsserver-cc" "${args[@]}" -o "$out" "${sources[@]}"
echo "$(basename "$out"): $(wc -c <"$out") bytes"

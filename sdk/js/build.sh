#!/usr/bin/env bash
# Builds a JavaScript wsserver plugin into a WebAssembly component with
# componentize-qjs (QuickJS; see README.md for why not componentize-js).
#
#     sdk/js/build.sh PROJECT_DIR OUT.wasm
#
# PROJECT_DIR holds a package.json whose "main" is the entry module and
# whose "wsserver.world" is "plugin" (the default) or "stateful-plugin"
# (the entry also exports `lifecycle`). The entry imports "wsserver-sdk":
# from the project's node_modules when installed there, otherwise from this
# SDK. componentize-qjs comes from PATH, the project's node_modules, or the
# toolchain directory that install-toolchain.sh fills.
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
for candidate in "$sdk/wit" "$sdk/../../wit"; do
  [[ -z $wit && -f $candidate/plugin.wit ]] && wit=$(cd "$candidate" && pwd)
done
[[ -n $wit ]] || { echo "build.sh: wit/plugin.wit not found (set WSSERVER_WIT)" >&2; exit 1; }

qjs=$(PATH="$project/node_modules/.bin:$PATH:$toolchains/js/node_modules/.bin" command -v componentize-qjs || true)
if [[ -z $qjs ]]; then
  echo "build.sh: componentize-qjs not found; run $sdk/install-toolchain.sh or 'npm install componentize-qjs'" >&2
  exit 1
fi

read -r entry world < <(node -e '
  const p = require(process.argv[1]);
  console.log(p.main ?? "index.js", (p.wsserver && p.wsserver.world) || "plugin");
' "$project/package.json")

# The entry resolves "wsserver-sdk" under the module root: the project when
# it has the package installed, else a copy of the project with this SDK.
root=$project
if [[ ! -d $project/node_modules/wsserver-sdk ]]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  tar -C "$project" --exclude=./node_modules -cf - . | tar -C "$root" -xf -
  mkdir -p "$root/node_modules/wsserver-sdk"
  cp -r "$sdk/package.json" "$sdk/src" "$root/node_modules/wsserver-sdk/"
fi

mkdir -p "$(dirname "$out")"
# --sync: wsserver calls exports synchronously (the default runtime is
# component-model async). WASI stays linked (the host grants nothing), so
# Date and Math.random work.
"$qjs" --wit "$wit" --world "$world" --js "$root/$entry" --module-root "$root" \
  --sync -o "$out" >/dev/null
echo "built $out ($(stat -c %s "$out") bytes, world $world)"

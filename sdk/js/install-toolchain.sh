#!/usr/bin/env bash
# Installs the JavaScript plugin toolchain (componentize-qjs, pinned) from
# npm into $WSSERVER_TOOLCHAINS/js (default ~/.cache/wsserver/toolchains),
# outside any checkout so that every clone and CI run on a machine shares
# it. Does nothing when that version is already there. Needs node and npm.
set -euo pipefail

version=0.4.5
dir=${WSSERVER_TOOLCHAINS:-$HOME/.cache/wsserver/toolchains}/js
if [[ -x $dir/node_modules/.bin/componentize-qjs ]] &&
  [[ $(node -p "require('$dir/node_modules/componentize-qjs/package.json').version") == "$version" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-toolchain.sh: npm is missing (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$dir"
[[ -f $dir/package.json ]] || echo '{"private": true}' >"$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --save-exact "componentize-qjs@$version"

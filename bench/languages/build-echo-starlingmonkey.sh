#!/usr/bin/env bash
# Builds plugins/echo-js a second way, with componentize-js (SpiderMonkey,
# "StarlingMonkey") instead of the SDK's componentize-qjs, for the
# JavaScript engine comparison in bench/RESULTS.md:
#
#     bench/languages/build-echo-starlingmonkey.sh OUT.wasm
#
# componentize-js takes one file, so rolldown bundles the example and the
# SDK first. `-d http -d fetch-event`: otherwise the component imports
# wasi:http, which wsserver does not link.
set -euo pipefail

out=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=${WSSERVER_TOOLCHAINS:-$HOME/.cache/wsserver/toolchains}/js-starlingmonkey
if [[ ! -x $tools/node_modules/.bin/componentize-js ]]; then
  mkdir -p "$tools"
  echo '{"private": true}' >"$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --save-exact \
    @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4 >/dev/null
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/node_modules/wsserver-sdk"
cp -r "$repo/sdk/js/package.json" "$repo/sdk/js/src" "$stage/node_modules/wsserver-sdk/"
cp "$repo/plugins/echo-js/echo.js" "$stage/"
(cd "$stage" && "$tools/node_modules/.bin/rolldown" echo.js --format esm --file bundle.js \
  --external 'wsserver:plugin/host@0.1.0' >/dev/null)
"$tools/node_modules/.bin/componentize-js" "$stage/bundle.js" --wit "$repo/wit" \
  --world-name stateful-plugin -d http -d fetch-event -o "$out" >/dev/null
echo "built $out ($(stat -c %s "$out") bytes)"

#!/bin/sh
# Builds {{name}}.wasm, the component wsserver loads: tsc (installed by
# `npm install` from package.json) checks the types and writes build/main.js,
# which componentize-qjs makes a component ({{sdk}}/js/install-toolchain.sh
# installs it).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
[ -x node_modules/.bin/tsc ] || npm install --no-audit --no-fund --silent
node_modules/.bin/tsc -p .
exec "{{sdk}}/js/build.sh" "$here" "$here/{{name}}.wasm"

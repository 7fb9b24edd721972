#!/bin/sh
# Builds {{name}}.wasm, the component wsserver loads (componentize-qjs;
# {{sdk}}/js/install-toolchain.sh installs it).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec "{{sdk}}/js/build.sh" "$here" "$here/{{name}}.wasm"

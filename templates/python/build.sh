#!/bin/sh
# Builds {{name}}.wasm, the component wsserver loads (componentize-py;
# {{sdk}}/python/install-toolchain.sh installs it).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec "{{sdk}}/python/build.sh" "$here" "$here/{{name}}.wasm"

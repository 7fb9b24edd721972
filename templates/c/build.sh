#!/bin/sh
# Builds {{name}}.wasm, the component wsserver loads, from every .c file
# here (with the arguments in wsserver-cc.args: --stateful exports the
# lifecycle that carries state across a hot swap).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
exec "{{sdk}}/c/build.sh" "$here" "$here/{{name}}.wasm"

#!/usr/bin/env bash
# Installs the Python plugin toolchain (componentize-py, pinned) from PyPI
# into a virtual environment at $WSSERVER_TOOLCHAINS/python (default
# ~/.cache/wsserver/toolchains), outside any checkout so that every clone
# and CI run on a machine shares it. Does nothing when that version is
# already there. Needs python3 with venv.
set -euo pipefail

version=0.25.1
dir=${WSSERVER_TOOLCHAINS:-$HOME/.cache/wsserver/toolchains}/python
if [[ -x $dir/bin/componentize-py ]] && [[ $("$dir/bin/componentize-py" --version) == "componentize-py $version" ]]; then
  exit 0
fi
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"

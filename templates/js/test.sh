#!/bin/sh
# Builds the component, serves it with wsserver and checks it as a client.
set -e
cd "$(dirname "$0")"
./build.sh
python3 test_plugin.py

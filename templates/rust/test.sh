#!/bin/sh
# The plugin's unit tests (natively), then the built component served by
# wsserver and checked by a client.
set -e
cd "$(dirname "$0")"
cargo test
./build.sh
python3 test_plugin.py

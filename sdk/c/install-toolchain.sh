#!/usr/bin/env bash
# Installs the C plugin toolchain when missing: clang, lld and the wasm32
# builtins (Debian's clang-19), wasi-libc (a preview-1 sysroot), and the
# wasm32-wasip2 rustup target, which ships wasm-component-ld. Also
# wit-bindgen (pinned), which only the check that the committed bindings
# match the WIT needs, into ~/.cache/wsserver/tools (about 5 minutes the
# first time on 2 cores; then cached outside any checkout).
set -euo pipefail

packages=()
command -v clang-19 >/dev/null || packages+=(clang-19)
command -v wasm-ld-19 >/dev/null || packages+=(lld-19)
[[ -f /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a ]] ||
  packages+=(libclang-rt-19-dev-wasm32)
[[ -f /usr/lib/wasm32-wasi/libc.a ]] || packages+=(wasi-libc)
if [[ ${#packages[@]} -gt 0 ]]; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${packages[@]}"
fi
rustup target add wasm32-wasip2

wit_bindgen_version=0.61.0
tools=${WSSERVER_TOOLS:-$HOME/.cache/wsserver/tools}
if [[ $("$tools/bin/wit-bindgen" --version 2>/dev/null) != "wit-bindgen-cli $wit_bindgen_version"* ]]; then
  # Its own target directory: not the project's, which may be locked.
  CARGO_TARGET_DIR="$tools/build" CARGO_INSTALL_ROOT="$tools" \
    cargo install --locked --quiet "wit-bindgen-cli@$wit_bindgen_version"
  rm -rf "$tools/build"
fi

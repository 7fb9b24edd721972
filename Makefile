# wsserver developer commands. `make test` is the one command that runs every
# test on a fresh machine: it installs what the tests need first.

CARGO_TARGET_DIR ?= $(shell cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
VENV := $(CARGO_TARGET_DIR)/test-venv
PYTHON_REQS := tests/python/requirements.txt plugins/tests/requirements.txt

.PHONY: test rust-tests python-tests plugin-tests bench-tests lint run setup

## Every test: unit, end-to-end (Rust clients), Python clients, the plugins
## run in wasmtime-py against a scripted host, and the benchmark harness.
test: setup rust-tests python-tests plugin-tests bench-tests

## Toolchain pieces and Python clients the tests use. The plugins build for
## wasm32-wasip2; machines here do not auto-install rustup targets.
setup: $(VENV)/.installed
	rustup target add wasm32-wasip2

$(VENV)/.installed: $(PYTHON_REQS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(PYTHON_REQS))
	touch $@

rust-tests: setup
	cargo test --workspace

python-tests: setup
	cargo build -p wsserver
	WSSERVER_BIN=$(CARGO_TARGET_DIR)/debug/wsserver $(VENV)/bin/pytest -q tests/python

plugin-tests: setup
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/plugin-tests $(VENV)/bin/pytest -q plugins/tests

## The benchmark harness is a workspace of its own (see bench/README.md).
bench-tests:
	cargo test --manifest-path bench/Cargo.toml

## What CI enforces besides the tests: formatting, clippy, and the module
## structure of host/src (no import cycle, no file over 600 lines of
## non-test code; see .ci/check-modules).
lint:
	python3 .ci/check-modules
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --manifest-path bench/Cargo.toml --all -- --check
	cargo clippy --manifest-path bench/Cargo.toml --all-targets -- -D warnings

## The server on 127.0.0.1:8080, serving the echo plugin.
run:
	rustup target add wasm32-wasip2
	cargo run -p wsserver

# wsserver developer commands. `make test` is the one command that runs every
# test on a fresh machine: it installs what the tests need first.

CARGO_TARGET_DIR ?= $(shell cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
VENV := $(CARGO_TARGET_DIR)/test-venv
PYTHON_REQS := tests/python/requirements.txt

.PHONY: test rust-tests python-tests lint run setup

## Every test: unit, end-to-end (Rust clients), Python clients.
test: setup rust-tests python-tests

## Toolchain pieces and Python clients the tests use.
setup: $(VENV)/.installed

$(VENV)/.installed: $(PYTHON_REQS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(PYTHON_REQS)
	touch $@

rust-tests:
	cargo test --workspace

python-tests: setup
	cargo build -p wsserver
	WSSERVER_BIN=$(CARGO_TARGET_DIR)/debug/wsserver $(VENV)/bin/pytest -q tests/python

## What CI enforces besides the tests.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## The server on 127.0.0.1:8080.
run:
	cargo run -p wsserver

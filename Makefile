# wsserver developer commands. `make test` is the one command that runs every
# test on a fresh machine: it installs what the tests need first.

CARGO_TARGET_DIR ?= $(shell cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
VENV := $(CARGO_TARGET_DIR)/test-venv
PYTHON_REQS := tests/python/requirements.txt plugins/tests/requirements.txt

.PHONY: test rust-tests python-tests plugin-tests browser-tests screenshots bench-tests lint run setup

## Every test: unit, end-to-end (Rust clients), Python clients, the plugins
## run in wasmtime-py against a scripted host, headless Chromium, and the
## benchmark harness.
test: setup rust-tests python-tests plugin-tests browser-tests bench-tests

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

## Headless Chromium (Debian's `chromium`; CHROMIUM names another) driven
## by playwright-core from npm, whose cache stays outside the clone. The
## dashboard test uploads the chat component, built here as the plugin
## tests build it.
CHROMIUM ?= /usr/bin/chromium
BROWSER_TESTS := tests/browser
PLUGIN_TARGET := $(CARGO_TARGET_DIR)/plugin-tests

$(BROWSER_TESTS)/node_modules/.installed: $(BROWSER_TESTS)/package-lock.json
	npm ci --prefix $(BROWSER_TESTS) --cache $(CARGO_TARGET_DIR)/npm-cache --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

browser-tests: setup $(BROWSER_TESTS)/node_modules/.installed
	@test -x $(CHROMIUM) || { echo "browser tests need Chromium: apt-get install chromium (or CHROMIUM=/path/to/chrome)"; exit 1; }
	cargo build -p wsserver
	CARGO_TARGET_DIR=$(PLUGIN_TARGET) cargo build --quiet --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml -p chat-plugin
	cd $(BROWSER_TESTS) && CHROMIUM=$(CHROMIUM) WSSERVER_BIN=$(CARGO_TARGET_DIR)/debug/wsserver \
		WSSERVER_PLUGIN_DIR=$(PLUGIN_TARGET)/wasm32-wasip2/release node --test --test-reporter=spec

## The README's screenshots, taken by the browser tests.
screenshots:
	$(MAKE) browser-tests SCREENSHOT_DIR=$(CURDIR)/docs/screenshots

## The benchmark harness is a workspace of its own (see bench/README.md).
bench-tests:
	cargo test --manifest-path bench/Cargo.toml

## What CI enforces besides the tests.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --manifest-path bench/Cargo.toml --all -- --check
	cargo clippy --manifest-path bench/Cargo.toml --all-targets -- -D warnings

## The server on 127.0.0.1:8080, serving the echo plugin.
run:
	rustup target add wasm32-wasip2
	cargo run -p wsserver

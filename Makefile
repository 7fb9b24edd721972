# wsserver developer commands. `make test` is the one command that runs every
# test on a fresh machine: it installs what the tests need first.

CARGO_TARGET_DIR ?= $(shell cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
VENV := $(CARGO_TARGET_DIR)/test-venv
PYTHON_REQS := tests/python/requirements.txt plugins/tests/requirements.txt

# Example plugins in other languages, plugins/NAME-LANG, one component each
# (NAME-LANG.wasm here). A language is one word in PLUGIN_LANGS plus its
# sdk/LANG/install-toolchain.sh (installs it outside the checkout) and
# sdk/LANG/build.sh PROJECT_DIR OUT.wasm.
PLUGIN_LANGS := js python c
SDK_PLUGINS := $(CARGO_TARGET_DIR)/sdk-plugins

.PHONY: test rust-tests python-tests plugin-tests browser-tests screenshots bench-tests sdk-tests lint run setup plugins fuzz

## Every test: unit, end-to-end (Rust clients), Python clients, the plugins
## run in wasmtime-py against a scripted host, the language SDKs, headless
## Chromium, and the benchmark harness.
test: setup rust-tests python-tests plugin-tests sdk-tests browser-tests bench-tests

## Builds every example plugin of every language into $(SDK_PLUGINS),
## installing the toolchains first (npm, PyPI, Debian). Built components are
## reused while their inputs are unchanged (see sdk/build-plugin.sh).
plugins: $(addprefix plugins-,$(PLUGIN_LANGS))

plugins-%:
	sdk/$*/install-toolchain.sh
	for dir in plugins/*-$*; do sdk/build-plugin.sh $* $$dir $(SDK_PLUGINS)/$$(basename $$dir).wasm || exit 1; done

## Toolchain pieces and Python clients the tests use. The plugins build for
## wasm32-wasip2; machines here do not auto-install rustup targets.
setup: $(VENV)/.installed
	rustup target add wasm32-wasip2

$(VENV)/.installed: $(PYTHON_REQS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(PYTHON_REQS))
	touch $@

# The binary the Python and browser tests start: built by the same command
# as the Rust tests, so it shares their build (`cargo build -p wsserver`
# unifies features differently and would build wasmtime a second time).
SERVER_BUILD := cargo test --workspace --no-run --quiet

# The end-to-end tests serve the example plugins of every language.
rust-tests: setup plugins
	cargo test --workspace

python-tests: setup
	$(SERVER_BUILD)
	WSSERVER_BIN=$(CARGO_TARGET_DIR)/debug/wsserver $(VENV)/bin/pytest -q tests/python

plugin-tests: setup
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/plugin-tests $(VENV)/bin/pytest -q plugins/tests

## The SDKs' own unit tests (no host): node's test runner for JavaScript,
## pytest against generated bindings for Python.
sdk-tests: setup plugins
	node --test sdk/js/test/
	$(VENV)/bin/pytest -q sdk/python/tests
	sdk/c/regen-bindings.sh $(CARGO_TARGET_DIR)/c-bindings
	diff -r sdk/c/bindings $(CARGO_TARGET_DIR)/c-bindings || { echo "sdk/c/bindings is stale: run sdk/c/regen-bindings.sh"; exit 1; }

## Headless Chromium (Debian's `chromium`; CHROMIUM names another) driven
## by playwright-core from npm, whose cache stays outside the clone. The
## dashboard test uploads the chat component, built here as the plugin
## tests build it. About 40 s on 2 cores; a cold machine adds `apt-get
## install chromium` (in .ci/run, 1-3 min) and `npm ci` (2 s, one package).
CHROMIUM ?= /usr/bin/chromium
BROWSER_TESTS := tests/browser
PLUGIN_TARGET := $(CARGO_TARGET_DIR)/plugin-tests

$(BROWSER_TESTS)/node_modules/.installed: $(BROWSER_TESTS)/package-lock.json
	npm ci --prefix $(BROWSER_TESTS) --cache $(CARGO_TARGET_DIR)/npm-cache --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

browser-tests: setup $(BROWSER_TESTS)/node_modules/.installed
	@test -x $(CHROMIUM) || { echo "browser tests need Chromium: apt-get install chromium (or CHROMIUM=/path/to/chrome)"; exit 1; }
	$(SERVER_BUILD)
	CARGO_TARGET_DIR=$(PLUGIN_TARGET) cargo build --quiet --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml -p chat-plugin
	cd $(BROWSER_TESTS) && CHROMIUM=$(CHROMIUM) WSSERVER_BIN=$(CARGO_TARGET_DIR)/debug/wsserver \
		WSSERVER_PLUGIN_DIR=$(PLUGIN_TARGET)/wasm32-wasip2/release node --test --test-reporter=spec

## The README's screenshots, taken by the browser tests.
screenshots:
	$(MAKE) browser-tests SCREENSHOT_DIR=$(CURDIR)/docs/screenshots

## The benchmark harness is a workspace of its own (see bench/README.md).
bench-tests:
	cargo test --manifest-path bench/Cargo.toml

## Every fuzz target for FUZZ_SECONDS each (see fuzz/README.md): one line
## per target, non-zero exit on a crash.
FUZZ_SECONDS ?= 20
fuzz:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run

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

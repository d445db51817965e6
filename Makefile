# Spatia — the README's two commands are `make demo` and `make test`; both do their own set-up.
SHELL := /bin/bash
CARGO ?= cargo
SPATIA := target/release/spatia

.PHONY: setup build demo test bench clean-cache

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

demo: build
	$(SPATIA) run experiments/demo.yaml

test: setup
	$(CARGO) test --release --locked --no-fail-fast

bench: build
	$(CARGO) bench --locked

clean-cache:
	rm -rf cache runs reports

# Spatia — the README's two commands are `make demo` and `make test`; both do their own set-up.
SHELL := /bin/bash
CARGO ?= cargo
SPATIA := target/release/spatia

.PHONY: setup build demo test bench clean-cache

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

DEMO_DATA := demo-data

# the generated cohort: made once (deterministic for its seed), reused by later runs
$(DEMO_DATA)/cohort.json: | build
	$(SPATIA) demo generate --out $(DEMO_DATA)

demo: build $(DEMO_DATA)/cohort.json
	$(SPATIA) run experiments/demo.yaml
	@echo "demo: QC overlays in reports/demo/qc/<slide>/overlay.png, Ki-67 maps in reports/demo/ihc/<slide>/positivity.png; run record in runs/"

test: setup
	$(CARGO) test --release --locked --no-fail-fast

bench: build
	$(CARGO) bench --locked

clean-cache:
	rm -rf cache runs reports $(DEMO_DATA)

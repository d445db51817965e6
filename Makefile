# Spatia — the README's two commands are `make demo` and `make test`; both do their own set-up.
SHELL := /bin/bash
CARGO ?= cargo
SPATIA := target/release/spatia
# libtorch for the TorchScript plugin (crates/spatia-torch, a cdylib `spatia` opens on first use;
# spatia itself does not link libtorch): a venv outside the clone, created once by
# scripts/setup-torch.sh, whose LIBTORCH / LIBTORCH_CXX11_ABI / SPATIA_TORCH_PYTHON it exports.
TORCH_ENV = eval "$$(bash scripts/setup-torch.sh --env)" &&
FEATURES ?= --features torch
# the plugin, built into target/release/libspatia_torch.so, beside the binary that looks for it there
PLUGIN = -p spatia-torch

.PHONY: setup build demo lint test test-slurm bench soak clean-cache

setup:
	@bash scripts/setup.sh

build: setup
	$(TORCH_ENV) $(CARGO) build --release --locked $(FEATURES) && $(TORCH_ENV) $(CARGO) build --release --locked $(PLUGIN)

DEMO_DATA := demo-data

# the generated cohort: made once (deterministic for its seed), reused by later runs
$(DEMO_DATA)/cohort.json: | build
	$(SPATIA) demo generate --out $(DEMO_DATA)

demo: build $(DEMO_DATA)/cohort.json
	$(SPATIA) run experiments/demo.yaml
	@echo "demo: the report is $(CURDIR)/reports/demo/index.html (open it in a browser); per-slide QC in reports/demo-slides/; \`$(SPATIA) times\` splits the run by stage"

# formatting (rustfmt.toml) and lints, warnings as errors; clippy uses the release profile so that it reuses
# the build's torch-sys outputs (a dev-profile clippy would compile its C++ wrapper again)
LINT = $(CARGO) fmt --all --check && $(TORCH_ENV) $(CARGO) clippy --release --locked --all-targets $(FEATURES) -- -D warnings && $(TORCH_ENV) $(CARGO) clippy --release --locked $(PLUGIN) -- -D warnings

lint: setup
	$(LINT)

# setup installs chromium, R (cmprsk, riskRegression) and the RO-Crate validator (scripts/setup-rocrate.sh,
# offline cache seeded), so the report, competing-risks and RO-Crate tests must find them (no silent skip). Then the Slurm executor's tests on a real single-node Slurm
# (scripts/slurm-test.sh installs slurm-wlm and munge if missing, starts and stops the daemons), also
# when the suite failed; either failing fails `make test`.
test: setup
	$(LINT)
	$(TORCH_ENV) $(CARGO) build --release --locked $(PLUGIN)
	rc=0; $(TORCH_ENV) SPATIA_REQUIRE_CHROMIUM=1 SPATIA_REQUIRE_R=1 SPATIA_REQUIRE_ROCRATE=1 $(CARGO) test --release --locked --no-fail-fast $(FEATURES) || rc=1; \
	$(TORCH_ENV) CARGO="$(CARGO)" FEATURES="$(FEATURES)" bash scripts/slurm-test.sh || rc=1; exit $$rc

# only the Slurm executor's tests, on a single-node Slurm started for them (about a minute)
test-slurm: setup
	$(TORCH_ENV) CARGO="$(CARGO)" FEATURES="$(FEATURES)" bash scripts/slurm-test.sh

bench: build
	$(TORCH_ENV) $(CARGO) bench --locked $(FEATURES)

# 100 SIGKILLs of the demo at random moments, then a full run and verify (15-30 min; not in test)
soak: build
	$(TORCH_ENV) $(CARGO) bench --locked $(FEATURES) --bench soak

clean-cache:
	rm -rf cache runs reports $(DEMO_DATA)

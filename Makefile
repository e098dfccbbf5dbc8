# ML Router — the two commands: `make run` (demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Tests run against the real local PostgreSQL and Redis; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/mlrouter
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# Parallel test processes (pytest-xdist); each gets its own test database and Redis database.
TEST_WORKERS ?= 2

.PHONY: run test lint format venv bench worker beat clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The demo: SQLite, the built-in upstream emulator, a funded customer and a printed API key.
run: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL DEBUG=true $(PY) manage.py migrate --no-input -v0
	env -u DATABASE_URL -u REDIS_URL DEBUG=true $(PY) manage.py seed_demo
	env -u DATABASE_URL -u REDIS_URL DEBUG=true $(PY) manage.py runserver 127.0.0.1:8000

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(STAMP) lint
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) manage.py makemigrations --check --dry-run -v0
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PY) -m pytest -q -n $(TEST_WORKERS)

# The benchmark (bench/README.md): starts what it needs on 127.0.0.1 and stops it; a few minutes.
# BENCH_QUICK=1 for a smoke run, BENCH_LITELLM=0 to skip LiteLLM, BENCH_PROFILE=1 for a py-spy pass,
# BENCH_RECONCILE=0 to skip timing reconciliation on a ledger of millions of rows, BENCH_SCALE=1 to add P7
# (10M generations and ledger entries, 11–13 minutes), BENCH_ONLY=P6|P7|P8 for one step alone.
bench: $(STAMP)
	$(PY) bench/run.py

worker: $(STAMP)
	$(VENV)/bin/celery -A mlrouter worker -l info

beat: $(STAMP)
	$(VENV)/bin/celery -A mlrouter beat -l info

clean:
	rm -rf $(VENV) db.sqlite3 .demo staticfiles

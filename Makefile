# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := APP_ENV=development $(BIN)/flask --app app
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test lint security screenshots format translations messages clean prod-up prod-down prod-smoke

run: $(STAMP) translations
	$(FLASK) db upgrade
	$(FLASK) run --host 127.0.0.1 --port 5000

# On every core (pyproject.toml: pytest-xdist); `$(BIN)/pytest -n 0` runs it in one process.
test: $(STAMP) translations $(NODE_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The production recipe (docs/deploy.md) on this machine: nginx with TLS on
# https://127.0.0.1:8443, two gunicorn instances, two workers and the scheduler running
# the built wheel, PostgreSQL and Redis. prod-smoke drives it as people would.
prod-up: $(STAMP)
	deploy/prod-up

prod-down:
	deploy/prod-down

prod-smoke: $(STAMP)
	$(BIN)/python -m deploy.smoke

# Static analysis (bandit: no finding may stand unexplained) and the dependency audit.
security: $(STAMP)
	$(BIN)/bandit -r viihde -q
	.ci/audit-dependencies

# Phone-size screenshots of the main pages into docs/screenshots/ (needs Debian's chromium).
screenshots: $(STAMP) translations
	$(BIN)/python docs/screenshots.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Lighthouse for the browser tests (package-lock.json pins it), where npm exists; without
# npm that test skips. Installed again when the lock file changes.
$(NODE_STAMP): package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund && touch $@; \
	else echo "npm not found: the Lighthouse test will be skipped"; fi

# Compile the catalogues (the .mo files are build output, not committed).
translations: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d translations --statistics 2>&1 | grep -v '^compiling' || true

# Re-extract the strings after changing texts, then translate the new ones in each .po.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o translations/messages.pot --no-location --sort-output --project viihde .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache

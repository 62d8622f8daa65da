# Everyday commands. `make up` brings the site up; `make test` runs every test.
.PHONY: up down logs shell manage lock test lint bench dev

COMPOSE ?= docker compose
PYTHON ?= python3
VENV := .venv
# The base image for `make lock` is the one the container builds on (PYTHON_IMAGE in .env, if set).
PYTHON_IMAGE ?= $(or $(shell sed -n 's/^PYTHON_IMAGE=//p' .env 2>/dev/null),python:3.14-alpine)

up: .env static  ## build the image and start the site, waiting until it is healthy
	$(COMPOSE) up -d --build --wait
	@echo "The site is up: http://127.0.0.1:6868/  (put the nginx site in front of it: see README)"

.env:  ## first run: a private copy of the example settings with a fresh SECRET_KEY
	@sed "s|^SECRET_KEY=.*|SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')|" \
		.env.example > .env
	@chmod 600 .env
	@echo "Created .env with a new SECRET_KEY. Set ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS and DB_* in it,"
	@echo "then run 'make up' again."
	@false

static:  ## the static bind mount, owned by the container's user (33:33, www-data) before Docker makes it root's
	mkdir -p static
	chown 33:33 static 2>/dev/null || sudo chown 33:33 static

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f

shell:
	$(COMPOSE) exec app python manage.py shell

manage:  ## make manage ARGS="createsuperuser"
	$(COMPOSE) run --rm app python manage.py $(ARGS)

lock:  ## compile requirements*.txt inside the base image: no local pip-tools needed
	docker run --rm -v "$(CURDIR):/src" -w /src -e HOST_UID=$$(id -u) -e HOST_GID=$$(id -g) \
		$(PYTHON_IMAGE) sh docker/pip-compile.sh

dev: $(VENV)/.installed  ## the site on this machine: runserver, SQLite in ./data, DEBUG on, no configuration
	DEBUG=true $(VENV)/bin/python manage.py migrate
	$(VENV)/bin/python manage.py runserver

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --require-hashes -r requirements-dev.txt
	touch $@

test: $(VENV)/.installed  ## the whole suite, against a real PostgreSQL (a throwaway one if DB_* is unset)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed  ## measure the real stack; prints a Markdown table (see bench/)
	$(VENV)/bin/python -m bench

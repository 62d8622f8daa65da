# Everyday commands. `make up` brings the site up; `make test` runs every test.
.PHONY: up build deploy rollback status down logs shell manage lock test test-unit lint bench dev

.DEFAULT_GOAL := help
.PHONY: help env data dev-container screenshots nginx-site fail2ban account
.PHONY: backup backups restore restore-drill backup-schedule
.PHONY: swarm-deploy swarm-upstream

COMPOSE ?= docker compose
PYTHON ?= python3
VENV := .venv
# The base image the container builds on, for `make lock` and the tests: PYTHON_IMAGE from the
# environment, else from .env, else the Dockerfile's default (the one place it is named).
PYTHON_IMAGE ?= $(or $(shell sed -n 's/^PYTHON_IMAGE=//p' .env 2>/dev/null),$(shell sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile))
# Every build pulls the base image afresh (docker-compose.yml's build.pull), so the OS's security
# fixes arrive - except a base that exists only on this machine (no registry digest: built here,
# like the offline image), which no registry has, so a pull would fail. BUILD_PULL in the
# environment or .env overrides. A base not here yet is pulled anyway.
BUILD_PULL ?= $(strip $(or $(shell sed -n 's/^BUILD_PULL=//p' .env 2>/dev/null),$(shell \
	docker image inspect -f '{{if .RepoDigests}}true{{else}}false{{end}}' '$(PYTHON_IMAGE)' 2>/dev/null || echo true)))
export BUILD_PULL
# A setting as compose reads it: the environment, else .env, else the default.
setting = $(or $($(1)),$(shell sed -n 's/^$(1)=//p' .env 2>/dev/null | tail -n 1),$(2))
SITE := $(call setting,SITE,sitekit)
APP_PORT := $(call setting,APP_PORT,6868)
# The container's uid:gid: the site's own account (make account) in production, www-data for the trial.
APP_UID := $(call setting,APP_UID,33)
APP_GID := $(call setting,APP_GID,33)
# Not exported: compose and scripts read .env themselves, and an exported SITE would name every
# clone `make test` starts (the tests' own stacks) after this one.

# The jail <SITE>-admin reads this site's container log alone; a new container logs to a new file,
# so up, deploy and rollback point an installed jail at it again (when run as root).
FAIL2BAN_DIR ?= /etc/fail2ban
FAIL2BAN_CLIENT ?= fail2ban-client
JAIL_REFRESH = if [ -w $(FAIL2BAN_DIR)/jail.d/$(SITE)-admin.local ]; then $(MAKE) -s fail2ban; fi

up: static data  ## build and start the site (no .env: the trial setup); prints its address, or why it failed
	@export REVISION=$${REVISION:-$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)} \
		VERSION=$${VERSION:-$$(git describe --tags --always 2>/dev/null || echo dev)}; \
		scripts/backup.sh before-start && COMPOSE="$(COMPOSE)" scripts/up.sh
	@$(JAIL_REFRESH)

build:  ## build the image alone (make up and make deploy build too), with a fresh base image (BUILD_PULL)
	$(COMPOSE) build app

env:  ## write .env for production: .env.example with a fresh SECRET_KEY (never overwrites one)
	@test ! -e .env || { echo "make env: .env exists already; edit it (see .env.example)"; exit 1; }
	@sed "s|^SECRET_KEY=.*|SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')|" \
		.env.example > .env
	@chmod 600 .env
	@echo "Created .env (the production example, with a new SECRET_KEY). Set ALLOWED_HOSTS,"
	@echo "CSRF_TRUSTED_ORIGINS and DB_* in it (README: Deploying to a VPS), then run 'make up'."

.env:  # a target that needs production settings writes them, then stops so they are reviewed
	@$(MAKE) --no-print-directory env
	@false

data:  ## the marker's and the trial's folder (SQLite, generated key), the container user's (APP_UID) alone
	mkdir -p data
	chown $(APP_UID):$(APP_GID) data 2>/dev/null || sudo chown $(APP_UID):$(APP_GID) data

static:  ## the static bind mount, the container user's (APP_UID) before Docker makes it root's; nginx reads it
	mkdir -p static
	chown $(APP_UID):$(APP_GID) static 2>/dev/null || sudo chown $(APP_UID):$(APP_GID) static
	chmod 755 static 2>/dev/null || sudo chmod 755 static  # nginx (www-data) reads; nobody else writes
	@[ "$(APP_UID)" != 33 ] || ! grep -q '^DB_NAME=.' .env 2>/dev/null || \
		echo "warning: the site runs as www-data (33), which nginx and PHP share: sudo make account" >&2

# On Debian/Ubuntu www-data (33) also runs nginx's workers, PHP and Apache: as the site's user it could
# be the site's database role (peer) and rewrite the files nginx serves. A system account of the
# site's own cannot log in, and pg_ident.conf maps its name (SITE) alone to the role (postgresql/).
account: .env  ## (root) the site's own system account, named SITE: its uid:gid into .env, ./static and ./data its own
	@id -u $(SITE) >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin $(SITE)
	@uid=$$(id -u $(SITE)) gid=$$(id -g $(SITE)); \
	[ "$$uid" -ge 100 ] && [ "$$gid" -ge 100 ] || \
		{ echo "make account: $(SITE) is uid $$uid, an account of the host's own: pick another SITE" >&2; exit 1; }; \
	for name in APP_UID:$$uid APP_GID:$$gid; do key=$${name%%:*} value=$${name#*:}; \
		if grep -q "^#\?$$key=" .env; then sed -i "s/^#\?$$key=.*/$$key=$$value/" .env; \
		else echo "$$key=$$value" >>.env; fi; done; \
	mkdir -p static data && chown -R $$uid:$$gid static data && chmod 755 static && chmod 700 data && \
	echo "make account: $(SITE) is $$uid:$$gid (APP_UID, APP_GID in .env); ./static and ./data are its own"

deploy: .env static data  ## upgrade, or apply an edited .env, with no dropped request (root); IMAGE=<repo>@sha256:..: CI's image, not built
	scripts/deploy.sh deploy $(IMAGE)
	@$(JAIL_REFRESH)

rollback:  ## back to the revision deployed before the serving one (deploy.log), never forward; or REV=<revision or repo@sha256:..>
	scripts/deploy.sh rollback $(REV)
	@$(JAIL_REFRESH)

status:  ## what serves (image or digest, revision, health), the rollback target, the kept images, the last deploys
	scripts/deploy.sh status

# The database's backups (scripts/backup.sh; docs/backups.md). Settings BACKUP_* in .env.
backup:  ## (root) dump the database now into BACKUP_DIR (/var/backups/<SITE>), with retention
	scripts/backup.sh backup

backups:  ## (root) the backups, newest first: size, age, revision
	scripts/backup.sh list

restore:  ## (root) FILE=<backup> (default: the newest) back into the site; it is down meanwhile
	scripts/restore.sh restore $(FILE)

restore-drill:  ## (root) restore the newest backup into a scratch database and check it; exit 0 or 1
	scripts/restore.sh drill $(FILE)

backup-schedule:  ## (root) install the nightly backup + drill: a systemd timer, or a cron line without systemd
	scripts/backup.sh schedule

down:  ## stop and remove the site's container
	$(COMPOSE) down

logs:  ## follow the site's log
	$(COMPOSE) logs -f app

shell:  ## Django's shell inside the running container
	$(COMPOSE) exec app python manage.py shell

# Without a terminal (CI, scripts), createsuperuser takes DJANGO_SUPERUSER_USERNAME/_EMAIL/_PASSWORD.
manage:  ## a manage.py command in a new container: make manage ARGS="createsuperuser"
	$(COMPOSE) run --rm $$(test -t 0 || echo -T) \
		-e DJANGO_SUPERUSER_USERNAME -e DJANGO_SUPERUSER_EMAIL -e DJANGO_SUPERUSER_PASSWORD app python manage.py $(ARGS)

# nginx/site.conf rendered for this clone: its SITE (names), DOMAIN and path. The catch-all server
# and the headers snippet are the host's, shared by every site: the newest clone's copy replaces them
# (a site file of this version may use what an older catch-all lacks, e.g. $limit_client).
NGINX_DIR ?= /etc/nginx
NGINX ?= nginx
nginx-site:  ## (root) this site's nginx file for DOMAIN=example.com, its upstream file; reloads nginx
	@test -n "$(DOMAIN)" || { echo "make nginx-site: name the domain: make nginx-site DOMAIN=example.com" >&2; exit 1; }
	mkdir -p $(NGINX_DIR)/sites-enabled $(NGINX_DIR)/snippets
	sed -e 's/sitekit_/$(SITE)_/g' -e 's|/etc/nginx/sitekit-upstream|$(NGINX_DIR)/$(SITE)-upstream|' \
		-e 's|/srv/sitekit|$(CURDIR)|' -e 's/example\.com/$(DOMAIN)/g' nginx/site.conf >$(NGINX_DIR)/sites-enabled/$(SITE).conf
	test -e $(NGINX_DIR)/$(SITE)-upstream.conf || echo 'server 127.0.0.1:$(APP_PORT);' >$(NGINX_DIR)/$(SITE)-upstream.conf
	cp nginx/default-server.conf $(NGINX_DIR)/sites-enabled/
	cp nginx/sitekit-headers.conf $(NGINX_DIR)/snippets/
	$(NGINX) -t -q && $(NGINX) -s reload

# Several nodes (docs/scale-out.md): a Docker Swarm runs swarm/stack.yml; each node's nginx serves.
swarm-deploy: .env  ## on a swarm manager: IMAGE=registry/name@sha256:... to every node, one at a time, no dropped request
	IMAGE="$(IMAGE)" swarm/deploy.sh

swarm-upstream:  ## (root) on a swarm node, after nginx-site: its task (SELF=its private address) first, PEERS as backups
	@test -n "$(SELF)" && test -n "$(PEERS)" || { echo "make swarm-upstream: name this node's private address and the others': SELF=10.0.0.2 PEERS=\"10.0.0.3 10.0.0.4\"" >&2; exit 1; }
	{ echo 'server $(SELF):$(APP_PORT) max_fails=1 fail_timeout=5s;  # this node (by its private address: the app trusts that network)'; \
	  for peer in $(PEERS); do echo "server $$peer:$(APP_PORT) backup;  # while this node's task is down (updates)"; done; \
	} >$(NGINX_DIR)/$(SITE)-upstream.conf
	$(NGINX) -t -q && $(NGINX) -s reload

fail2ban:  ## (root) jail <SITE>-admin: bans admin-login guessers, reading this site's container log alone
	@id=$$($(COMPOSE) ps -q app) && [ -n "$$id" ] && log=$$(docker inspect -f '{{.LogPath}}' "$$id") || \
		{ echo "make fail2ban: $(SITE) is not running (make up)" >&2; exit 1; }; \
	cp -n fail2ban/filter.d/sitekit-admin.conf $(FAIL2BAN_DIR)/filter.d/ && \
	sed -e 's/^\[sitekit-admin\]/[$(SITE)-admin]/' -e "s|^logpath = .*|logpath = $$log|" \
		fail2ban/jail.d/sitekit-admin.local >$(FAIL2BAN_DIR)/jail.d/$(SITE)-admin.local && \
	{ $(FAIL2BAN_CLIENT) status $(SITE)-admin >/dev/null 2>&1 && $(FAIL2BAN_CLIENT) reload $(SITE)-admin || \
		$(FAIL2BAN_CLIENT) reload; } >/dev/null && echo "fail2ban: $(SITE)-admin reads $$log"

lock:  ## compile requirements*.txt inside the base image: no local pip-tools needed
	docker run --rm -v "$(CURDIR):/src" -w /src -e HOST_UID=$$(id -u) -e HOST_GID=$$(id -g) \
		$(PYTHON_IMAGE) sh scripts/pip-compile.sh

dev: $(VENV)/.installed  ## the site on this machine: runserver, SQLite in ./data, DEBUG on, no configuration
	DEBUG=true $(VENV)/bin/python manage.py migrate
	$(VENV)/bin/python manage.py runserver

dev-container: data  ## the site in a container with live reload: ./app and ./templates mounted, runserver
	$(COMPOSE) -f docker-compose.yml -f compose.dev.yml up --build

screenshots: $(VENV)/.installed  ## refresh docs/screenshots/ with the browser test (needs .ci/provision's tools)
	SCREENSHOTS_DIR=docs/screenshots PYTHON_IMAGE=$(PYTHON_IMAGE) $(VENV)/bin/python -m pytest tests/e2e/test_browser.py

help:  ## list the targets and what each does
	@awk -F':.*## ' '/^[a-z][a-z0-9.-]*:.*## /{printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --require-hashes -r requirements-dev.txt
	touch $@

test-unit: $(VENV)/.installed  ## the fast unit tests alone (no Docker stack, nothing slow)
	PYTHON_IMAGE=$(PYTHON_IMAGE) $(VENV)/bin/python -m pytest -m "not e2e and not slow" $(PYTEST_ARGS)

test: $(VENV)/.installed  ## the whole suite, against a real PostgreSQL (a throwaway one if DB_* is unset)
	PYTHON_IMAGE=$(PYTHON_IMAGE) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed  ## ruff's checks and formatting (make test runs every linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed  ## measure the real stack; prints a Markdown table (see tests/bench/)
	PYTHON_IMAGE=$(PYTHON_IMAGE) $(VENV)/bin/python -m tests.bench
	$(VENV)/bin/python -m tests.bench.backup
	PYTHON_IMAGE=$(PYTHON_IMAGE) $(VENV)/bin/python -m tests.bench.swarm

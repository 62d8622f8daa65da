# The site's image. Two stages: the first compiles the dependencies, the second carries only what
# runs, so compilers and headers never reach production.
#
# Alpine by default: the smallest official Python base. The same file builds on Debian by changing
# this one argument, e.g. --build-arg PYTHON_IMAGE=python:3.14-slim, or the offline base image
# (scripts/build-offline-base.sh) where no registry can be reached. The one place the default is named.
ARG PYTHON_IMAGE=python:3.14-alpine

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# A C compiler and libpq's headers: psycopg2 is built from source against the system libpq
# (psycopg2-binary bundles its own libpq and OpenSSL, which then miss the OS's security updates).
COPY docker/os-packages.sh /usr/local/bin/os-packages
RUN os-packages build

# A venv is a self-contained directory: the final stage copies it whole and nothing else of pip's.
ENV PATH=/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv

# Requirements before code: a code-only change reuses this layer and skips the compile. pip's cache
# is a BuildKit cache mount, outside every layer: a changed pin rebuilds only what changed.
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip pip install --require-hashes -r /tmp/requirements.txt

# The app, file by file, so nothing else in the build context (.env, .git, venvs) can slip in.
WORKDIR /app
COPY manage.py requirements.txt ./
COPY app/ app/
COPY templates/ templates/
COPY docker/docker-entrypoint.sh docker/gunicorn.conf.py docker/
# The build's identity, a hash of the app's content (shown in the logs to tell builds apart).
RUN find . -type f -exec sha256sum {} + > /tmp/files && sort -o /tmp/files /tmp/files \
 && sha256sum /tmp/files > .build-id && rm /tmp/files \
 && python -m compileall -q app
# Static files are collected here, once per build, into /app/collected with their manifest
# (staticfiles.json): each image renders the hashed names of its own files, and the entrypoint only
# copies them into the public folder (docker/docker-entrypoint.sh). Settings demand a secret and a
# host even for collectstatic, which uses neither: throwaway values, for this command only.
# Their checksums let every start verify the public copy in milliseconds (docker-entrypoint.sh).
RUN SECRET_KEY=collectstatic-at-build-time-uses-no-secret-key-0123456789 \
    ALLOWED_HOSTS=build.invalid DB_NAME=unused STATIC_ROOT=/app/collected \
    python manage.py collectstatic --noinput --verbosity 0 \
 && find /app/collected -type f ! -name staticfiles.json -exec sha256sum {} + >/app/static.sha256 \
 && sed -i 's|  /app/collected/|  ./|' /app/static.sha256

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

COPY docker/os-packages.sh /usr/local/bin/os-packages
RUN os-packages runtime && rm /usr/local/bin/os-packages

COPY --from=build /venv /venv
COPY --from=build /app /app
WORKDIR /app

# Run as an unprivileged numeric user. compose runs it as APP_UID:APP_GID, the site's own account in
# production (make account); 33:33 (the host's www-data) is the trial's default. Numeric: any host.
USER 33:33

# No .pyc writes (the root filesystem is read-only; .pyc were compiled at build time), unbuffered
# logs straight to Docker, the venv first on PATH, the app importable for gunicorn's config,
# a writable HOME (uid 33 has none; compose mounts /tmp as a tmpfs), Django's STATIC_ROOT at
# the files and manifest collected at build time (read-only; /app/static is the public copy), and
# tini (compose's init: true) passing docker stop's SIGTERM to the entrypoint's running step too.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH \
    PYTHONPATH=/app \
    HOME=/tmp \
    STATIC_ROOT=/app/collected \
    TINI_KILL_PROCESS_GROUP=1

EXPOSE 6868
# Liveness without curl: the image's own Python asks /healthz (answered without touching the database).
# The one source of the probe and its timings, for compose and any other runner. Every 5 s: also how
# soon `up --wait` can see "healthy" (start_interval would need engine >= 25). The first 60 s, while
# start-up waits for the database and migrates, failures do not count.
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6868/healthz', timeout=4)"]
# gunicorn's graceful shutdown: finish in-flight requests, then exit (SIGINT/SIGQUIT would not wait).
STOPSIGNAL SIGTERM

ENTRYPOINT ["/app/docker/docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "docker/gunicorn.conf.py", "app.asgi:application"]

# ---------------------------------------------------------------------------------------------
# The runtime image plus the test tools and tests/: CI runs the unit tests in it (--target test),
# so the image under test is the one that ships. Built only when asked for; never pushed.
FROM runtime AS test
USER 0:0
# The test tools (requirements-test.txt: the runtime pins plus pytest & co., not the host's linters,
# which have no musl wheels; CI runs those on the runner); psycopg2 is in /venv already.
COPY requirements-test.txt /tmp/requirements-test.txt
RUN --mount=type=cache,target=/root/.cache/pip pip install --require-hashes -r /tmp/requirements-test.txt
COPY pyproject.toml .env.example docker-compose.yml ./
COPY tests/ tests/
# The tests collect static files and keep hypothesis's examples: somewhere writable, in the tmpfs.
ENV STATIC_ROOT=/tmp/static \
    HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis
USER 33:33

# ---------------------------------------------------------------------------------------------
# The default target: the runtime image and what build it is. Last, so a new commit changes only
# this metadata layer. gunicorn logs the three at start (docker/gunicorn.conf.py, when_ready).
FROM runtime
ARG VERSION=dev REVISION=unknown BUILD_ID=
# The revision the site answers with (X-Revision header): which version serves, after a deploy.
ENV APP_REVISION=${REVISION} \
    APP_VERSION=${VERSION} \
    APP_BUILD_ID=${BUILD_ID}
LABEL org.opencontainers.image.title="sitekit" \
      org.opencontainers.image.description="Reference Django site with a container deployment kit" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

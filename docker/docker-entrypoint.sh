#!/bin/sh
# The container's entrypoint. Compose runs it under tini (init: true), which passes signals on.
#   prepare          wait for the database, publish the image's static files, migrate; then exit 0.
#                    scripts/deploy.sh runs it from a new image before anything running is touched.
#   gunicorn ...     prepare, then become the server (exec: gunicorn gets Docker's SIGTERM).
#   anything else    runs as given: docker compose run --rm app python manage.py createsuperuser
# Static files and migrations run once per build and database state: a marker in ./data says so.
set -eu

case "${1:-}" in
  prepare | gunicorn) ;;
  *) exec "$@" ;;
esac

log() { echo "entrypoint: $*" >&2; }
fail() { log "error: $*"; exit 1; }
# tini signals the whole process group (TINI_KILL_PROCESS_GROUP, Dockerfile): the step ends at once, then this.
trap 'log "stopped during preparation"; exit 143' TERM INT

# gunicorn parses WEB_CONCURRENCY on import, with a traceback: its config file checks the settings first.
[ "$1" = prepare ] || python docker/gunicorn.conf.py

public=/app/static  # the ./static bind mount nginx serves (docker-compose.yml)
data=/app/data      # the ./data bind mount: the marker, and the trial's SQLite
for dir in "$public" "$data"; do
  # Docker creates a missing bind-mount source as root:root, which this unprivileged user cannot write.
  if ! [ -d "$dir" ] || ! [ -w "$dir" ]; then
    fail "$dir is not writable by uid $(id -u): on the host, run: sudo mkdir -p ./${dir#/app/} && sudo chown $(id -u):$(id -g) ./${dir#/app/}"
  fi
done

# 1. Wait for the database, a bounded number of times (DB_WAIT_ATTEMPTS x DB_WAIT_SECONDS); exit 2
#    means retrying cannot help. On success: the key of this build and the database's state.
key=$(python manage.py check_database --wait --key)

# Every file this image ships, byte for byte in the public folder (checksums made at build time).
intact() { (cd "$public" && sha256sum -c /app/static.sha256) >/dev/null 2>&1; }

# The marker in both folders: a public folder emptied or replaced since is published to again, and
# a file changed there since (tampered: nginx serves it `immutable`) is replaced, at every start.
if [ -e "$data/.prepared-$key" ] && [ -e "$public/.prepared-$key" ] && intact; then
  log "already prepared for this build and database state: skipping static files and migrations"
else
  # 2. The static files collected into this image at build time, copied into the public folder:
  #    each checked byte for byte, a missing or different one written whole then renamed, and a
  #    replaced one logged (publish_static.py). A full disk stops here.
  python manage.py publish_static "$public" || fail "static files not published (see above)"
  # 3. Migrations, under a PostgreSQL advisory lock (migrate.py): concurrent starts never race.
  python manage.py migrate --noinput || fail "migrations failed (see above); not starting"
  # 4. The marker, keyed on the state after migrate: the next start of this build skips 2 and 3.
  python manage.py mark_prepared "$data" --also "$public" || :  # no marker (said above): the next start prepares again
fi

if [ "$1" = prepare ]; then
  log "prepared"
  exit 0
fi
exec "$@"

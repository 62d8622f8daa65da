#!/bin/sh
# The container's entrypoint.
#   prepare          wait for the database, publish the image's static files, migrate; then exit 0.
#                    scripts/deploy.sh runs it from a new image before anything running is touched.
#   gunicorn ...     prepare, then become the server: exec makes gunicorn PID 1, so Docker's
#                    SIGTERM reaches it directly and shuts it down gracefully.
#   anything else    runs as given: docker compose run --rm app python manage.py createsuperuser
#
# No "already prepared" marker: each start migrates (under an advisory lock, ~0.3 s when there is
# nothing to do) and publishes (nothing to copy when the files are there). A marker can only
# remember what was done to *a* database; this checks the database itself, so one recreated empty
# under the same name is migrated again instead of serving "relation does not exist".
set -eu

case "${1:-}" in
  prepare | gunicorn) ;;
  *) exec "$@" ;;
esac

log() { echo "entrypoint: $*" >&2; }
fail() { log "error: $*"; exit 1; }

# As PID 1 this shell ignores signals it does not trap, and a foreground child would keep it from
# running a trap until the child ends. So each step runs in the background and the shell waits for
# it: SIGTERM (docker stop) interrupts the wait, is passed on, and the container stops at once
# instead of after the grace period. A migration stopped this way is rolled back by PostgreSQL.
child=
stop() {
  trap - TERM INT
  log "stopped during preparation"
  [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true
  wait
  exit 143
}
trap stop TERM INT
run() {
  "$@" &
  child=$!
  wait "$child"
}

# gunicorn parses WEB_CONCURRENCY itself on import, before its config file could report a bad value.
if [ "$1" = gunicorn ]; then
  case "${WEB_CONCURRENCY:-3}" in
    '' | *[!0-9]*) fail "WEB_CONCURRENCY must be a whole number, not '${WEB_CONCURRENCY:-}'" ;;
  esac
fi

# The public static folder: the ./static bind mount nginx serves (docker-compose.yml).
public=/app/static
# Docker creates a missing bind-mount source as root:root, which this unprivileged user cannot write.
if ! [ -d "$public" ] || ! [ -w "$public" ]; then
  fail "$public is not writable by uid $(id -u): on the host, run: sudo mkdir -p ./static && sudo chown $(id -u):$(id -g) ./static"
fi

# 1. Wait for the database, a bounded number of times: on boot the host's PostgreSQL may still be
#    starting. Exit status 2 from check_database means retrying cannot help (e.g. a wrong password).
attempts=${DB_WAIT_ATTEMPTS:-30}
pause=${DB_WAIT_SECONDS:-2}
case "$attempts" in '' | *[!0-9]*) fail "DB_WAIT_ATTEMPTS must be a whole number, not '$attempts'" ;; esac
case "$pause" in '' | *[!0-9]*) fail "DB_WAIT_SECONDS must be a whole number, not '$pause'" ;; esac
attempt=1
while :; do
  status=0
  run python manage.py check_database --attempt "$attempt/$attempts" || status=$?
  [ "$status" -eq 0 ] && break
  [ "$status" -eq 1 ] || exit "$status"
  [ "$attempt" -lt "$attempts" ] || fail "database still unreachable after $attempts attempts; giving up (the restart policy will try again)"
  attempt=$((attempt + 1))
  run sleep "$pause"
done

# 2. The static files collected into this image at build time, copied into the public folder:
#    only missing files, each written whole then renamed; old versions' files stay
#    (app/management/commands/publish_static.py). A full disk stops here, before any migration.
run python manage.py publish_static "$public" || fail "static files not published (see above)"

# 3. Migrations, under a PostgreSQL advisory lock (app/management/commands/migrate.py): containers
#    starting together, or a deploy's new version next to the old one, never race.
run python manage.py migrate --noinput || fail "migrations failed (see above); not starting"

if [ "$1" = prepare ]; then
  log "prepared"
  exit 0
fi

# 4. Become the server.
trap - TERM INT
exec "$@"

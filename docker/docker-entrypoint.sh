#!/bin/sh
# Prepares the site, then replaces itself with the server: exec makes gunicorn PID 1, so Docker's
# SIGTERM reaches it directly and shuts it down gracefully. Any other command runs as given:
#   docker compose run --rm app python manage.py createsuperuser
set -eu

if [ "${1:-}" != "gunicorn" ]; then
  exec "$@"
fi

log() { echo "entrypoint: $*" >&2; }
fail() { log "error: $*"; exit 1; }

# gunicorn parses WEB_CONCURRENCY itself on import, before its config file could report a bad value.
case "${WEB_CONCURRENCY:-3}" in
  ''|*[!0-9]*) fail "WEB_CONCURRENCY must be a whole number, not '${WEB_CONCURRENCY:-}'" ;;
esac

static_root=${STATIC_ROOT:-/app/static}
# Docker creates a missing bind-mount source as root:root, which this unprivileged user cannot write.
if ! [ -d "$static_root" ] || ! [ -w "$static_root" ]; then
  fail "$static_root is not writable by uid $(id -u): on the host, run: sudo mkdir -p ./static && sudo chown $(id -u):$(id -g) ./static"
fi

# 1. Wait for the database, a bounded number of times: on boot the host's PostgreSQL may still be
#    starting. Exit status 2 from check_database means retrying cannot help (e.g. a wrong password).
attempts=${DB_WAIT_ATTEMPTS:-30}
pause=${DB_WAIT_SECONDS:-2}
case "$attempts" in ''|*[!0-9]*) fail "DB_WAIT_ATTEMPTS must be a whole number, not '$attempts'" ;; esac
case "$pause" in ''|*[!0-9]*) fail "DB_WAIT_SECONDS must be a whole number, not '$pause'" ;; esac
attempt=1
while :; do
  status=0
  python manage.py check_database --attempt "$attempt/$attempts" || status=$?
  [ "$status" -eq 0 ] && break
  [ "$status" -eq 1 ] || exit "$status"
  [ "$attempt" -lt "$attempts" ] || fail "database still unreachable after $attempts attempts; giving up (the restart policy will try again)"
  attempt=$((attempt + 1))
  sleep "$pause"
done

# 2. collectstatic and migrate, once per build of the image and database.
#    The marker's name is the image build's content hash (.build-id, made by the Dockerfile) plus
#    the database it was prepared for. It lives in the static bind mount, the one place this
#    container can write that outlives it (the root filesystem is read-only, /tmp is a tmpfs), so:
#    - a restart finds it and skips the work;    - a new image has a new build id and runs it;
#    - it is written only after both succeed, so a failure leaves none and the next start retries;
#    - concurrent containers are safe: `migrate` holds a PostgreSQL advisory lock while it runs
#      (app/management/commands/migrate.py), and collectstatic writes identical files.
#    nginx refuses dotfiles, so the marker is never served.
build_id=$(cut -c1-16 /app/.build-id)
database=$(printf '%s' "${DB_HOST:-}:${DB_PORT:-}/${DB_NAME:-sqlite}" | sha256sum | cut -c1-8)
marker="$static_root/.prepared-$build_id-$database"
if [ -e "$marker" ]; then
  log "build $build_id already prepared for this database: skipping collectstatic and migrate"
else
  log "build $build_id: collecting static files"
  python manage.py collectstatic --noinput --verbosity 0
  log "build $build_id: applying migrations"
  python manage.py migrate --noinput
  rm -f "$static_root"/.prepared-*
  touch "$marker"
  log "build $build_id: prepared"
fi

# 3. Become the server.
exec "$@"

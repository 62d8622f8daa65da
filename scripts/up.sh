#!/bin/sh
# `make up`: build, start, and watch the container until it is healthy. Prints the address that
# answers, or - as soon as the container stops or restarts - the one line of its log that says why,
# instead of waiting out the health check's start period to report "unhealthy".
set -eu
cd "$(dirname "$0")/.."

compose=${COMPOSE:-docker compose}
timeout=${UP_TIMEOUT:-180}  # seconds: the first start migrates; a database may still be booting

site_setting() { # NAME DEFAULT: from .env, as the container gets it (env_file), else DEFAULT
  value=$(sed -n "s/^$1=//p" .env 2>/dev/null | tail -n 1)
  echo "${value:-$2}"
}
compose_setting() { # NAME DEFAULT: as compose interpolates ${NAME}: the environment, then .env
  value=$(printenv "$1" || site_setting "$1" "$2")
  echo "${value:-$2}"
}

# shellcheck disable=SC2086  # $compose is a command with arguments, e.g. "docker compose"
$compose up -d --build --remove-orphans app
# shellcheck disable=SC2086
container=$($compose ps -aq app)
started=$(date +%s)
shown=0
while :; do
  # The entrypoint's lines (waiting for the database, publishing, migrating) as they come.
  log=$(docker logs "$container" 2>&1 | grep -E '^(entrypoint: |attempt |configuration error|error)' || true)
  count=$(printf '%s' "$log" | grep -c '' || true)
  [ "$count" -le "$shown" ] || printf '%s\n' "$log" | tail -n "+$((shown + 1))"
  shown=$count

  state=$(docker inspect -f '{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container")
  # shellcheck disable=SC2086  # split into status, restart count, health
  set -- $state
  [ "$1 ${3:-}" != "running healthy" ] || break
  if [ "$1" = exited ] || [ "$1" = dead ] || [ "$1" = restarting ] || [ "$2" -gt 0 ] ||
    [ $(($(date +%s) - started)) -ge "$timeout" ]; then
    # The first error the container logged, after the last reason it gave (e.g. why the database
    # is unreachable): later lines come from restarts that fail the same way.
    why=$(docker logs "$container" 2>&1 | awk '
      /[Ee]rror/ { if (reason != "" && reason != $0) print reason; print; found = 1; exit }
      /unreachable|refused|denied|not writable|timed out/ { reason = $0 }
      END { if (!found && reason != "") print reason }')
    [ -n "$why" ] || why=$(docker logs --tail 5 "$container" 2>&1)
    echo "make up: the site did not come up. The container says:" >&2
    printf '%s\n' "$why" | sed 's/^/    /' >&2
    echo "make up: full log: make logs" >&2
    exit 1
  fi
  sleep 1
done

port=$(compose_setting APP_PORT 6868)
if [ -z "$(site_setting DB_NAME '')" ]; then
  echo "The site is up (trial setup): http://127.0.0.1:$port/"
  echo "Admin user: make manage ARGS=createsuperuser.  For production: make env, then README."
else
  host=$(site_setting ALLOWED_HOSTS localhost | cut -d, -f1 | tr -d ' ')
  scheme=http
  case $(site_setting HTTPS false) in [Tt]rue | 1 | [Yy]es | [Oo]n) scheme=https ;; esac
  echo "The site is up on 127.0.0.1:$port, for nginx to serve as $scheme://$host/"
  echo "  (sudo make nginx-site DOMAIN=$host: README, Deploying to a VPS). Check it from here:"
  echo "  curl -H 'Host: $host' http://127.0.0.1:$port/readyz"
fi

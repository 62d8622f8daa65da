#!/usr/bin/env bash
# Deploys the site to a Docker Swarm (swarm/stack.yml) from a manager, or with DOCKER_HOST set to one:
#   make swarm-deploy IMAGE=registry.example.com/site@sha256:...
#  1. SECRET_KEY and DB_PASSWORD from .env become Docker secrets (named by a hash: they cannot change);
#  2. `prepare` from the new image runs once on every node (a global job): each node's static folder
#     gets the release's files before any node serves it, and migrations run once, under the
#     entrypoint's advisory lock; if it fails, nothing running was touched;
#  3. `docker stack deploy`: Swarm replaces one node's task at a time behind its health check and
#     rolls back by itself a release that does not get healthy; this waits for the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "swarm-deploy: error: $*" >&2; exit 1; }
setting() { # NAME DEFAULT: the environment first, then .env, then DEFAULT
  local value=${!1-}
  [[ -n $value ]] || value=$(sed -n "s/^$1=//p" .env 2>/dev/null | tail -n 1)
  echo "${value:-$2}"
}
image=${IMAGE:-$(setting APP_IMAGE "")}
[[ $image == *@sha256:* ]] || fail "IMAGE must name the image by digest (registry/name@sha256:...), not '${image:-}'"
[[ -r .env ]] || fail "no .env here (make env): the nodes' settings come from it"
docker node ls >/dev/null 2>&1 || fail "this Docker engine is not a swarm manager (docker swarm init; docs/scale-out.md)"
site=$(setting SITE sitekit)
PRIVATE_NETWORK=$(setting PRIVATE_NETWORK "") && export PRIVATE_NETWORK
[[ $PRIVATE_NETWORK == */* ]] || fail "set PRIVATE_NETWORK in .env: the nodes' private network, e.g. 10.0.0.0/24"
timeout=${SWARM_TIMEOUT:-600}  # seconds for each step; a rolling update takes about a minute per node

APP_PORT=$(setting APP_PORT 6868) APP_UID=$(setting APP_UID 33) APP_GID=$(setting APP_GID 33)
APP_MEMORY_LIMIT=$(setting APP_MEMORY_LIMIT 512m)
export APP_IMAGE=$image SITE_DIR=${SITE_DIR:-$PWD} APP_PORT APP_UID APP_GID APP_MEMORY_LIMIT  # for stack.yml
SWARM_ENV_FILE=$(mktemp) && export SWARM_ENV_FILE
trap 'rm -f "$SWARM_ENV_FILE"' EXIT
# .env without the two that arrive as files, and unquoted: Docker's env files keep quotes, compose's not.
grep -Ev '^(SECRET_KEY|DB_PASSWORD)=' .env | sed -E "s/^([A-Za-z_][A-Za-z0-9_]*)=([\"'])(.*)\2\$/\1=\3/" >"$SWARM_ENV_FILE"

secret() { # NAME: the Docker secret holding .env's NAME, created if new; prints its name
  local value name
  value=$(setting "$1" "") && [[ -n $value ]] || fail "$1 is not set in .env"
  value=${value#[\"\']} && value=${value%[\"\']}  # compose's optional quotes, as the single VPS reads them
  name=${site}_${1,,}_$(printf %s "$value" | sha256sum | cut -c1-12)
  docker secret inspect "$name" >/dev/null 2>&1 || printf %s "$value" | docker secret create "$name" - >/dev/null
  echo "$name"
}
SECRET_KEY_SECRET=$(secret SECRET_KEY)
DB_PASSWORD_SECRET=$(secret DB_PASSWORD)
export SECRET_KEY_SECRET DB_PASSWORD_SECRET

job=$site-prepare-$(date +%s)
echo "swarm-deploy: preparing $image on every node ($job)"
docker service create --detach --quiet --name "$job" --mode global-job --restart-condition none \
  --user "$APP_UID:$APP_GID" --read-only --mount type=tmpfs,target=/tmp --env-file "$SWARM_ENV_FILE" \
  --secret "source=$SECRET_KEY_SECRET,target=secret_key" --env SECRET_KEY_FILE=/run/secrets/secret_key \
  --secret "source=$DB_PASSWORD_SECRET,target=db_password" --env DB_PASSWORD_FILE=/run/secrets/db_password \
  --mount "type=bind,source=$SITE_DIR/static,target=/app/static" \
  --mount "type=bind,source=$SITE_DIR/data,target=/app/data" "$image" prepare >/dev/null
nodes=$(docker node ls --format '{{.Status}} {{.Availability}}' | grep -c '^Ready Active')  # where global tasks run
for ((waited = 0; ; waited += 2)); do
  states=$(docker service ps "$job" --format '{{.CurrentState}}' | cut -d' ' -f1 | sort | uniq -c | xargs)
  [[ $states != *Failed* && $states != *Rejected* ]] || break
  [[ $states != "$nodes Complete" ]] || break
  ((waited < timeout)) || break
  sleep 2
done
if [[ $states != "$nodes Complete" ]]; then
  docker service logs --raw "$job" 2>&1 | tail -n 20 >&2
  docker service rm "$job" >/dev/null
  fail "prepare did not complete on all $nodes nodes ($states); nothing running was changed"
fi
docker service rm "$job" >/dev/null
prepared=$SECONDS

echo "swarm-deploy: prepared in ${prepared} s; rolling it out, one node at a time"
service=${site}_app
update() { # the service's last update: its state and when it started; nothing before a first one
  docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.StartedAt}}{{end}}' "$service" 2>/dev/null || true
}
before=$(update)  # the last update's outcome stays on the service: only a newer one is this deploy's
docker stack deploy --with-registry-auth --compose-file swarm/stack.yml "$site" >/dev/null
for ((waited = 0; ; waited += 2)); do
  read -r state started <<<"$(update)" || true
  if [[ -n $state && "$state $started" != "$before" ]]; then
    case $state in
      completed) break ;;
      rollback_* | paused) [[ $state == rollback_started ]] ||
        fail "the release did not become healthy: Swarm $state (docker service ps $service)" ;;
    esac
  else  # a first deploy, or nothing changed: done when every node's task runs the image
    serving=$(docker service ps "$service" --filter desired-state=running --format '{{.Image}} {{.CurrentState}}' |
      grep -c "^$image Running" || true)
    ((serving < nodes)) || break
  fi
  ((waited < timeout)) || fail "not done after ${timeout}s: Swarm ${state:-starting} (docker service ps $service)"
  sleep 2
done
echo "swarm-deploy: $image serves on all $nodes nodes; the rollout took $((SECONDS - prepared)) s"

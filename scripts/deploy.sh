#!/usr/bin/env bash
# Upgrades with no dropped request, rollbacks, status: make deploy | rollback [REV=..] | status.
# What serves is always compose project $SITE on APP_PORT (as `make up` starts it). A deploy:
#  1. builds $SITE:<revision> and runs `prepare` from it (database, static files, migrations) before
#     anything running is touched: if that fails, the old version serves on, untouched;
#  2. starts it as project $SITE-next on APP_PORT+1, points nginx there (the upstream file, then a
#     graceful reload) and waits until nginx holds no connection to APP_PORT;
#  3. recreates project $SITE with it, points nginx back, drains APP_PORT+1 and removes $SITE-next;
#  4. tags it $SITE:latest (plain `docker compose` then runs what serves) and prunes old tags.
# Why two containers: one cannot be replaced without a gap (docs/deploy.md). Needs root: it rewrites
# /etc/nginx/$SITE-upstream.conf and signals nginx. DEPLOY_DIR keeps the lock and deploy.log.
set -euo pipefail
cd "$(dirname "$0")/.."

setting() { # NAME DEFAULT: the environment first, then .env (as compose reads it), then DEFAULT
  local value=${!1-}
  [[ -n $value ]] || value=$(sed -n "s/^$1=//p" .env 2>/dev/null | tail -n 1)
  echo "${value:-$2}"
}
site=$(setting SITE sitekit)
port=$(setting APP_PORT 6868)
next_port=$((port + 1))
upstream=${NGINX_UPSTREAM:-/etc/nginx/$site-upstream.conf}  # what the site's nginx file includes
read -ra nginx <<<"${NGINX:-nginx}"  # the nginx command, e.g. NGINX="nginx -p /srv/x -c /srv/x/nginx.conf"
state=${DEPLOY_DIR:-.deploy}  # lock, deploy.log, previous: next to the clone
keep=${KEEP_IMAGES:-3}  # the last deployed revisions whose images stay (deploy.log), besides the previous one
ready_seconds=${READY_SECONDS:-90}  # for /readyz: a first start may wait for the database
drain_seconds=${DRAIN_SECONDS:-70}  # above nginx's proxy_read_timeout: the longest a request may run

fail() { echo "${action:-deploy}: error: $*" >&2; exit 1; }
compose() { # PROJECT PORT IMAGE ARGS...
  env APP_IMAGE="$3" APP_PORT="$2" docker compose -p "$1" "${@:4}"
}
home() { compose "$site" "$port" "$@"; }
next() { compose "$site-next" "$next_port" "$@"; }
discard_next() { [[ $(upstream_port) == "$next_port" ]] || next "$1" down >/dev/null 2>&1; }  # unless it serves
container() { # PROJECT: its app container (not a one-off `compose run` one, such as prepare's)
  docker ps -aq --filter "label=com.docker.compose.project=$1" --filter label=com.docker.compose.service=app \
    --filter label=com.docker.compose.oneoff=False | head -n 1
}
upstream_port() { sed -n 's/^[[:space:]]*server 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$upstream" 2>/dev/null | head -n 1 || true; }
revision() { docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$1"; }
named() { # IMAGE-ID: a tag of $site other than latest (which moves at each deploy); made from its revision if none
  local tag
  tag=$(docker image inspect -f '{{range .RepoTags}}{{println .}}{{end}}' "$1" | grep "^$site:" | grep -v ':latest$' | head -n 1) ||
    {
      tag=$(revision "$1") && tag=$site:${tag:-unknown}
      ! docker image inspect "$tag" >/dev/null 2>&1 || tag=$tag-${1:7:12}  # that name is another build's
      docker tag "$1" "$tag"
    }
  echo "$tag"
}

step() { # TITLE COMMAND...: run one step, print its duration; on failure show the end of its output
  local title=$1 started output status=0
  printf -- '--> %s\n' "$title"
  started=$(date +%s%N)
  output=$("${@:2}" 2>&1) || status=$?
  if ((status != 0)); then
    [[ -z $output ]] || tail -n 25 <<<"$output" | sed 's/^/    | /'
    failed_step=$title
    # The cause, for the one-line message: the last error line that is not a "see above" summary.
    cause=$(grep -E '(Error|error):' <<<"$output" | grep -v 'see above' | tail -n 1 | sed 's/^.*error: //') || true
  fi
  local ms=$((($(date +%s%N) - started) / 1000000))
  local verdict="done"
  ((status == 0)) || verdict=FAILED
  printf '    %s in %d.%d s\n' "$verdict" $((ms / 1000)) $((ms % 1000 / 100))
  return "$status"
}
readyz() { # PORT: the HTTP status of GET /readyz on that loopback port (bash only, no curl)
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3" 2>/dev/null | cut -d' ' -f2
}
wait_ready() { # PROJECT PORT: until it answers 200; fail fast when its container exits or restarts
  local deadline=$((SECONDS + ready_seconds)) id
  id=$(container "$1")
  until [[ $(readyz "$2") == 200 ]]; do
    [[ $(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "$id") == "true 0" ]] || {
      docker logs --tail 15 "$id"
      return 1
    }
    ((SECONDS < deadline)) || { echo "not ready after ${ready_seconds}s"; return 1; }
    sleep 0.2
  done
}
point_nginx() { # PORT: write the upstream file anew (renamed in) and reload nginx gracefully; undone on failure
  local previous
  previous=$(cat "$upstream" 2>/dev/null || true)
  printf '# Written by scripts/deploy.sh: the port nginx sends %s to.\nserver 127.0.0.1:%s;\n' "$site" "$1" \
    >"$upstream.new" && mv "$upstream.new" "$upstream" || return 1
  if ! "${nginx[@]}" -t -q || ! "${nginx[@]}" -s reload; then
    if [[ -n $previous ]]; then printf '%s\n' "$previous" >"$upstream"; else rm -f "$upstream"; fi
    return 1
  fi
}
drain() { # PORT: until nginx holds no connection to it (old workers exit once their requests end)
  local deadline=$((SECONDS + drain_seconds)) idle=0
  sleep 1  # the reload is asynchronous: let nginx's master start the new workers first
  while ((idle < 2 && SECONDS < deadline)); do
    if [[ -z $(ss -Htn state established "dst 127.0.0.1:$1") ]]; then idle=$((idle + 1)); else idle=0; fi
    sleep 0.5
  done
}

switch_to() { # IMAGE: the deploy proper, shared by deploy and rollback
  local image=$1 id old='' serving
  rev=${image##*:}
  id=$(container "$site")
  if [[ -n $id && $(docker inspect -f '{{.State.Running}}' "$id") == true ]]; then
    old=$(named "$(docker inspect -f '{{.Image}}' "$id")")
    if [[ $(docker image inspect -f '{{.Id}}' "$image") == $(docker inspect -f '{{.Image}}' "$id") &&
      $(upstream_port) == "$port" && $(readyz "$port") == 200 ]]; then
      echo "$rev already serves: nothing to do"
      outcome=unchanged
      return
    fi
  fi
  serving="${old:-the old version} still serves"
  # An nginx that does not read the upstream file would never leave the old container: refuse first.
  "${nginx[@]}" -T 2>/dev/null | grep -F "# configuration file $upstream:" >/dev/null ||  # not -q: SIGPIPE
    fail "nginx does not include $upstream: install the site's nginx file (make nginx-site; README, VPS guide)"
  # Migrations the database lacks: a backup first (scripts/backup.sh), so `make restore` can undo them.
  if [[ $(setting BACKUP_BEFORE_MIGRATIONS true) == true ]] &&
    ! next "$image" run --rm --no-deps -T --entrypoint python app manage.py migrate --check >/dev/null 2>&1; then
    step "back up the database: $rev has migrations it lacks" scripts/backup.sh backup "before-$rev" ||
      { discard_next "$image"; fail "the backup before $rev's migrations failed: ${cause:-see above}; $serving, untouched"; }
  fi
  step "prepare $rev from its image: database, static files, migrations (nothing running is touched)" \
    next "$image" run --rm --no-deps -T app prepare ||
    { discard_next "$image"; fail "$rev failed to prepare: ${cause:-see above}; $serving, untouched"; }
  if [[ -n $old && $(upstream_port) != "$next_port" ]]; then  # something serves: hand over to -next first
    if ! { step "start $rev as $site-next (127.0.0.1:$next_port)" next "$image" up -d --no-build --pull never --force-recreate &&
      step "wait until $site-next answers /readyz" wait_ready "$site-next" "$next_port" &&
      step "point nginx at $site-next and reload it gracefully" point_nginx "$next_port"; }; then
      discard_next "$image"
      fail "$rev did not take over: ${cause:-see above}; $serving"
    fi
    step "wait until nginx has no connection left to 127.0.0.1:$port" drain "$port"
    serving="$rev serves from $site-next"
  fi
  if ! { step "recreate $site with $rev (127.0.0.1:$port)" home "$image" up -d --no-build --pull never --force-recreate &&
    step "wait until $site answers /readyz" wait_ready "$site" "$port" &&
    step "point nginx back at $site and reload it gracefully" point_nginx "$port"; }; then
    fail "$site did not come back with $rev: ${cause:-see above}; $serving"
  fi
  step "wait until nginx has no connection left to 127.0.0.1:$next_port" drain "$next_port"
  step "remove $site-next" next "$image" down || echo "warning: $site-next did not stop cleanly; $rev serves"
  [[ -z $old ]] || echo "$old" >"$state/previous"
  docker tag "$image" "$site:latest"
  echo "$rev serves (127.0.0.1:$port)"
}
prune() { # untag $site's images but the serving, the previous and the last $keep deployed (deploy.log)
  local keep_list tag previous
  previous=$(cat "$state/previous" 2>/dev/null) || true
  keep_list=" latest $rev ${previous##*:} $(awk -F'\t' '$5 == "ok" { print $3 }' "$state/deploy.log" 2>/dev/null |
    tail -n "$keep" | tr '\n' ' ') "
  docker image ls "$site" --format '{{.Tag}}' | while read -r tag; do
    [[ $tag == "<none>" || $keep_list == *" $tag "* ]] || docker image rm "$site:$tag" >/dev/null || echo "kept $site:$tag"
  done
}

begin() { # ACTION: tools, root, the lock (a second deploy refuses at once), the log line at the end
  action=$1
  local target=$upstream tool
  for tool in docker flock ss; do  # ss: iproute2, flock: util-linux (both in Debian/Ubuntu's base)
    command -v "$tool" >/dev/null || fail "$tool is not installed on this host"
  done
  [[ -e $upstream ]] || target=$(dirname "$upstream")
  [[ -w $target ]] || fail "cannot write $upstream (then reload nginx): run it as root, e.g. sudo make $action"
  mkdir -p "$state"
  exec 9>>"$state/lock"
  flock -n 9 || fail "another deploy or rollback is running ($(cat "$state/lock.holder" 2>/dev/null)); try again when it ends"
  who=${SUDO_USER:-$(id -un)}
  echo "$action by $who since $(date -u +%FT%TZ), pid $$" >"$state/lock.holder"
  outcome=failed
  trap 'printf "%s\t%s\t%s\t%s\t%s\t%ss\n" "$(date -u +%FT%TZ)" "$action" "${rev:-?}" "$who" \
    "$outcome${failed_step:+: $failed_step}" "$SECONDS" >>"$state/deploy.log"' EXIT
}

case "${1:-}" in
  deploy)
    rev=${REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null)} || true
    [[ -n $rev ]] || fail "not a git checkout: name the version, e.g. REVISION=v1.2 make deploy"
    if [[ -z ${REVISION:-} && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
      rev=$rev-dirty-$(date -u +%Y%m%d%H%M%S)  # uncommitted changes: never reuse the commit's tag
    fi
    begin deploy
    step "build $site:$rev" env REVISION="$rev" APP_IMAGE="$site:$rev" docker compose -p "$site" build app ||
      fail "the build failed: ${cause:-see above}; nothing running was touched"
    switch_to "$site:$rev"
    [[ $outcome == unchanged ]] || outcome=ok
    step "prune images of $site (keep the last $keep, the serving and the previous)" prune
    ;;
  rollback)
    begin rollback
    if [[ -n ${2:-} ]]; then image=$site:$2; else image=$(cat "$state/previous" 2>/dev/null) || true; fi
    [[ -n $image ]] || fail "no previous revision recorded: name one, make rollback REV=<revision>"
    rev=${image##*:}
    docker image inspect "$image" >/dev/null 2>&1 ||
      fail "no image $image on this host; kept: $(docker image ls "$site" --format '{{.Tag}}' | tr '\n' ' ')"
    switch_to "$image"
    [[ $outcome == unchanged ]] || outcome=ok
    ;;
  status)
    for project in "$site" "$site-next"; do
      id=$(container "$project")
      [[ -n $id ]] || continue
      printf '%-12s %s\n' "$project" "$(docker inspect -f '{{.Config.Image}} revision {{index .Config.Labels "org.opencontainers.image.revision"}} {{.State.Status}}{{if and .State.Running .State.Health}} ({{.State.Health.Status}}){{end}}' "$id")"
    done
    shown=$(upstream_port)
    printf 'nginx        %s (%s)\n' "${shown:+127.0.0.1:}${shown:-no upstream file}" "$upstream"
    printf 'previous     %s (make rollback goes back to it)\n' "$(cat "$state/previous" 2>/dev/null || echo none)"
    printf 'images       %s\n' "$(docker image ls "$site" --format '{{.Tag}}' | tr '\n' ' ')"
    [[ ! -s $state/deploy.log ]] || { echo "last deploys ($state/deploy.log):"; tail -n 5 "$state/deploy.log"; }
    ;;
  *) fail "usage: scripts/deploy.sh deploy | rollback [REVISION] | status" ;;
esac

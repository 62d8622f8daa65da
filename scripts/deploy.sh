#!/usr/bin/env bash
# Upgrades without a dropped request, rollbacks, status: make deploy | rollback [REV=..] | status.
#
# How: two "slots" of the one docker-compose.yml, run as two compose projects on two loopback ports.
# Slot a is what `make up` starts (project sitekit, APP_PORT 6868, APP_SUBNET); slot b is project
# sitekit-b on APP_PORT_B (APP_PORT + 1) and APP_SUBNET_B. The host's nginx proxies to the port
# named in NGINX_UPSTREAM (/etc/nginx/sitekit-upstream.conf, included by nginx/sitekit.conf). A deploy:
#  1. builds the image, tagged with the git revision; older tags are pruned, the last KEEP_IMAGES
#     (3) stay, and so do the serving and the previous one: those are what rollback can go back to;
#  2. runs `prepare` from the new image (database check, static files published, migrations) before
#     anything running is touched: if that fails, the old version serves on, untouched;
#  3. starts the new version in the idle slot and waits until it answers /readyz on its port;
#  4. points the upstream file at that port and reloads nginx: new workers send new requests there,
#     while the old workers finish the requests they hold (nginx's graceful reload);
#  5. waits until nginx holds no connection to the old port, then stops the old slot (gunicorn lets
#     anything still in flight finish). The stopped slot stays, the quick way back.
# Why this way: one container cannot be replaced without a gap (requests after its SIGTERM get 502);
# docker-rollout needs a proxy that discovers containers (wowu/docker-rollout#14) and Swarm's
# start-first needs its routing mesh. nginx already fronts the site: it only needs a new port.
# Needs root: it rewrites a file under /etc/nginx and signals nginx (sudo make deploy). It refuses,
# before touching anything, when the running nginx does not read that file (an older site file).
# Each step prints its duration; DEPLOY_DIR holds the lock and the append-only log (deploy.log).
set -euo pipefail
cd "$(dirname "$0")/.."

setting() { # NAME DEFAULT: the environment first, then .env (as compose reads it), then DEFAULT
  local value=${!1-}
  [[ -n $value ]] || value=$(sed -n "s/^$1=//p" .env 2>/dev/null | tail -n 1)
  echo "${value:-$2}"
}
project=$(setting COMPOSE_PROJECT_NAME sitekit)
repo=$(setting APP_IMAGE sitekit:latest) && repo=${repo%:*}
port_a=$(setting APP_PORT 6868)
port_b=$(setting APP_PORT_B $((port_a + 1)))
subnet_b=$(setting APP_SUBNET_B 172.31.69.0/24)  # slot a's is compose's own APP_SUBNET
upstream=${NGINX_UPSTREAM:-/etc/nginx/sitekit-upstream.conf}  # the file nginx/sitekit.conf includes
read -ra nginx <<<"${NGINX:-nginx}"  # the nginx command, e.g. NGINX="nginx -p /srv/x -c /srv/x/nginx.conf"
state=${DEPLOY_DIR:-.deploy}  # lock, deploy.log, previous: on the host, next to the clone
keep=${KEEP_IMAGES:-3}  # image tags kept for rollbacks, besides the serving and the previous one
ready_seconds=${READY_SECONDS:-90}  # for the new version's /readyz: a first start may wait for the database
drain_seconds=${DRAIN_SECONDS:-70}  # above nginx's proxy_read_timeout: the longest a request may run

say() { echo "$*"; }
fail() { echo "${action:-deploy}: error: $*" >&2; exit 1; }
other() { [[ $1 == a ]] && echo b || echo a; }
port_of() { [[ $1 == a ]] && echo "$port_a" || echo "$port_b"; }
project_of() { [[ $1 == a ]] && echo "$project" || echo "$project-b"; }
compose() { # SLOT IMAGE ARGS...: docker compose on a slot's project, port, subnet and image
  local slot=$1 image=$2 subnet=()
  shift 2
  [[ $slot == a ]] || subnet=("APP_SUBNET=$subnet_b")  # slot a: what compose reads (.env or its default)
  env APP_IMAGE="$image" APP_PORT="$(port_of "$slot")" "${subnet[@]}" docker compose -p "$(project_of "$slot")" "$@"
}
container() { # SLOT: its app container (not a one-off `compose run` one, such as prepare's)
  docker ps -aq --filter "label=com.docker.compose.project=$(project_of "$1")" --filter label=com.docker.compose.service=app \
    --filter label=com.docker.compose.oneoff=False | head -n 1
}
image_of() { local id; id=$(container "$1") && [[ -n $id ]] && docker inspect -f '{{.Config.Image}}' "$id"; }
serving() { # the slot nginx sends requests to: the upstream file's port (before any deploy: slot a if it runs)
  local port
  port=$(sed -n 's/^[[:space:]]*server 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$upstream" 2>/dev/null | head -n 1)
  if [[ $port == "$port_a" ]]; then echo a; elif [[ $port == "$port_b" ]]; then echo b
  elif [[ -z $port && -n $(container a) ]]; then echo a; fi
}

step() { # TITLE COMMAND...: run one step, print its duration; on failure show the end of its output
  local title=$1 started output status=0
  shift
  printf -- '--> %s\n' "$title"
  started=$(date +%s%N)
  output=$("$@" 2>&1) || status=$?
  if ((status != 0)); then
    [[ -z $output ]] || tail -n 25 <<<"$output" | while IFS= read -r line; do echo "    | $line"; done
    failed_step=$title
    # The cause, for the one-line message: the last error line that is not a "see above" summary.
    cause=$(grep -E '(Error|error):' <<<"$output" | grep -v 'see above' | tail -n 1 | sed 's/^.*error: //') || true
  fi
  local ms=$((($(date +%s%N) - started) / 1000000)) verdict="done"
  ((status == 0)) || verdict=FAILED
  printf '    %s in %d.%d s\n' "$verdict" $((ms / 1000)) $((ms % 1000 / 100))
  return "$status"
}

readyz() { # PORT: the HTTP status of GET /readyz straight from a slot's published port (bash only, no curl)
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3" 2>/dev/null | cut -d' ' -f2
}
wait_ready() { # SLOT: until it answers 200, or fail fast when its container exits or restarts
  local deadline=$((SECONDS + ready_seconds)) id
  id=$(container "$1")
  until [[ $(readyz "$(port_of "$1")") == 200 ]]; do
    [[ $(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "$id") == "true 0" ]] || {
      docker logs --tail 15 "$id"
      return 1
    }
    ((SECONDS < deadline)) || { echo "not ready after ${ready_seconds}s"; return 1; }
    sleep 0.2
  done
}
point_nginx() { # PORT: rewrite the upstream file (a whole new file, renamed in) and reload nginx gracefully
  local previous
  previous=$(cat "$upstream" 2>/dev/null || true)
  printf '# Written by scripts/deploy.sh at each deploy: the port of the serving slot.\nserver 127.0.0.1:%s;\n' "$1" \
    >"$upstream.new" && mv "$upstream.new" "$upstream" || return 1
  if ! "${nginx[@]}" -t -q || ! "${nginx[@]}" -s reload; then
    if [[ -n $previous ]]; then printf '%s\n' "$previous" >"$upstream"; else rm -f "$upstream"; fi
    return 1
  fi
}
drain() { # PORT: wait until nginx holds no connection to it (old workers exit once their requests end)
  local deadline=$((SECONDS + drain_seconds)) idle=0
  sleep 1  # the reload is asynchronous: let nginx's master start the new workers first
  while ((idle < 2 && SECONDS < deadline)); do
    if [[ -z $(ss -Htn state established "dst 127.0.0.1:$1") ]]; then idle=$((idle + 1)); else idle=0; fi
    sleep 0.5
  done
}

switch_to() { # IMAGE: the deploy proper, shared by deploy and rollback
  local image=$1 rev=${1##*:} from to old_image=
  from=$(serving)
  to=$(other "${from:-b}")
  [[ -z $from ]] || old_image=$(image_of "$from")
  if [[ $old_image == "$image" && $(readyz "$(port_of "$from")") == 200 ]]; then
    say "$rev already serves (slot $from): nothing to do"
    outcome=unchanged
    return
  fi
  # An nginx still on a site file with a fixed port would keep sending requests to the old slot,
  # which this would then stop: refuse before anything is touched.
  "${nginx[@]}" -T 2>/dev/null | grep -F "# configuration file $upstream:" >/dev/null ||  # not -q: SIGPIPE
    fail "nginx does not include $upstream: install nginx/sitekit.conf and nginx/sitekit-upstream.conf (README, VPS guide)"
  step "prepare $rev from its image: database, static files, migrations (nothing running is touched)" \
    compose "$to" "$image" run --rm --no-deps -T app prepare ||
    fail "$rev failed to prepare: ${cause:-see above}; ${old_image:-the old version} still serves, untouched"
  step "start $rev in slot $to (127.0.0.1:$(port_of "$to"))" compose "$to" "$image" up -d --no-build --pull never ||
    fail "$rev did not start: ${cause:-see above}; ${old_image:-the old version} still serves"
  if ! step "wait until slot $to answers /readyz" wait_ready "$to"; then
    step "stop slot $to" compose "$to" "$image" stop || true
    fail "$rev did not become ready: ${cause:-see above}; ${old_image:-the old version} still serves"
  fi
  if ! step "point nginx at slot $to and reload it gracefully" point_nginx "$(port_of "$to")"; then
    [[ -z $from ]] || step "stop slot $to" compose "$to" "$image" stop || true
    fail "nginx refused the switch: ${cause:-see above}; ${old_image:-the old version} still serves"
  fi
  if [[ -n $from ]]; then
    step "wait until nginx has no connection left to slot $from" drain "$(port_of "$from")"
    step "stop slot $from (gunicorn finishes what is in flight)" compose "$from" "${old_image:-$image}" stop ||
      say "warning: slot $from did not stop cleanly; $rev serves"
  fi
  [[ -z $old_image ]] || echo "$old_image" >"$state/previous"
  say "$rev serves (slot $to, 127.0.0.1:$(port_of "$to"))"
}
prune() { # keep the newest $keep tags of the image, and the serving and previous ones whatever their age
  local tag keep_list
  keep_list=" $(image_of a) $(image_of b) $(cat "$state/previous" 2>/dev/null) $repo:latest "
  docker image ls "$repo" --format '{{.CreatedAt}}	{{.Tag}}' | sort -r | tail -n +$((keep + 1)) | cut -f2 |
    while read -r tag; do
      [[ $tag == "<none>" || $keep_list == *" $repo:$tag "* ]] || docker image rm "$repo:$tag" >/dev/null 2>&1 || true
    done
}

begin() { # ACTION: root check, the lock (a second deploy refuses at once), the log line at the end
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
  export started_at=$SECONDS  # read by the EXIT trap
  trap 'printf "%s\t%s\t%s\t%s\t%s\t%ss\n" "$(date -u +%FT%TZ)" "$action" "${rev:-?}" "$who" \
    "$outcome${failed_step:+: $failed_step}" $((SECONDS - started_at)) >>"$state/deploy.log"' EXIT
}

case "${1:-}" in
  deploy)
    rev=${REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null)} || true
    [[ -n $rev ]] || fail "not a git checkout: name the version, e.g. REVISION=v1.2 make deploy"
    if [[ -z ${REVISION:-} && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
      rev=$rev-dirty-$(date -u +%Y%m%d%H%M%S)  # uncommitted changes: never reuse the commit's tag
    fi
    begin deploy
    step "build $repo:$rev" env REVISION="$rev" APP_IMAGE="$repo:$rev" docker compose -p "$project" build app ||
      fail "the build failed: ${cause:-see above}; nothing running was touched"
    switch_to "$repo:$rev"
    [[ $outcome == unchanged ]] || outcome=ok
    step "prune images of $repo (keep the last $keep, the serving and the previous)" prune
    ;;
  rollback)
    begin rollback
    if [[ -n ${2:-} ]]; then image=$repo:$2; else image=$(cat "$state/previous" 2>/dev/null) || true; fi
    [[ -n $image ]] || fail "no previous revision recorded: name one, make rollback REV=<revision>"
    rev=${image##*:}
    docker image inspect "$image" >/dev/null 2>&1 ||
      fail "no image $image on this host; kept: $(docker image ls "$repo" --format '{{.Tag}}' | tr '\n' ' ')"
    switch_to "$image"
    [[ $outcome == unchanged ]] || outcome=ok
    ;;
  status)
    now=$(serving)
    for slot in a b; do
      id=$(container "$slot")
      about="- none"  # its image, the revision baked into it, its state (and health while it runs)
      [[ -z $id ]] || about=$(docker inspect -f '{{.Config.Image}} revision {{index .Config.Labels "org.opencontainers.image.revision"}} {{.State.Status}}{{if and .State.Running .State.Health}} ({{.State.Health.Status}}){{end}}' "$id")
      printf '%-8s slot %s  127.0.0.1:%-6s %s\n' "$([[ $slot == "$now" ]] && echo serving || echo idle)" "$slot" \
        "$(port_of "$slot")" "$about"
    done
    printf 'previous %s   (make rollback goes back to it)\n' "$(cat "$state/previous" 2>/dev/null || echo none)"
    printf 'images   %s\n' "$(docker image ls "$repo" --format '{{.Tag}}' | tr '\n' ' ')"
    [[ ! -s $state/deploy.log ]] || { echo "last deploys ($state/deploy.log):"; tail -n 5 "$state/deploy.log"; }
    ;;
  guard-up) # make up (re)starts slot a in place, with a gap: once deploys happen, they upgrade
    action=up
    ! grep -qP '\t(deploy|rollback)\t.*\tok\t' "$state/deploy.log" 2>/dev/null ||
      fail "this site is upgraded with make deploy (no dropped request); make status shows what serves"
    ;;
  compose) # docker compose on the serving slot: make logs / shell / manage
    slot=$(serving)
    slot=${slot:-a}
    compose "$slot" "$(image_of "$slot" || setting APP_IMAGE sitekit:latest)" "${@:2}"
    ;;
  down)
    for slot in a b; do compose "$slot" "$repo:latest" down; done
    ;;
  *) fail "usage: scripts/deploy.sh deploy | rollback [REVISION] | status | compose ARGS | down | guard-up" ;;
esac

#!/usr/bin/env bash
# Upgrades with no dropped request, rollbacks, status: make deploy [IMAGE=..] | rollback [REV=..] | status.
# What serves is always compose project $SITE on APP_PORT (as `make up` starts it). A deploy:
#  1. builds $SITE:<revision> (or pulls IMAGE by digest) and runs `prepare` from it (database, static
#     files, migrations) before anything running is touched: if that fails, the old version serves on;
#  2. starts it as project $SITE-next on APP_PORT+1, asks it for the key pages (GATE_PATHS) as nginx
#     would, points nginx there (the upstream file, then a graceful reload) and waits until nginx
#     holds no connection to APP_PORT;
#  3. recreates project $SITE with it, points nginx back, drains APP_PORT+1 and removes $SITE-next;
#  4. tags it $SITE:latest (plain `docker compose` then runs what serves) and prunes old tags.
# Why two containers: one cannot be replaced without a gap (docs/deploy.md). Needs root: it rewrites
# /etc/nginx/$SITE-upstream.conf and signals nginx. DEPLOY_DIR keeps the lock and deploy.log.
# A deploy of the revision that serves switches too when the configuration changed (.env, compose file).
# A rollback goes back through deploy.log's successful deploys, one at a time, never forward.
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
state=${DEPLOY_DIR:-.deploy}  # lock and deploy.log: next to the clone
keep=${KEEP_IMAGES:-3}  # the last deployed images that stay (deploy.log), besides the rollback target
read -ra pages <<<"${GATE_PATHS:-/ /submit/ /admin/login/}"  # asked of a new version before nginx sends it anyone
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
pull() { # REF: a registry's image, by digest; refused with one line (scripts/image.sh), nothing touched
  printf -- '--> pull %s\n' "$1"
  image=$(IMAGE_CALLER=$action scripts/image.sh pull "$1" "$site") || exit 1
  printf '    %s, revision %s\n' "$image" "$(revision "$image")"
}

configuration() { # IMAGE: a hash of what it would run with: .env and the compose file, as compose resolves them
  (unset REVISION VERSION BUILD_PULL && home "$1" config) | sha256sum | cut -c1-12  # (build-time values left out)
}
history() { # the revisions deployed, oldest first, as rollbacks leave them: a rollback to R drops what followed R
  # deploy.log's columns: time, action, revision, who, outcome, seconds, what served before, configuration.
  awk -F'\t' '$5 != "ok" { next }
    $2 == "deploy" { if ($7 != "" && $7 != "-" && h[n] != $7) h[++n] = $7; if (h[n] != $3) h[++n] = $3 }
    $2 == "rollback" { for (j = n; j > 0 && h[j] != $3; j--); if (j) n = j; else h[++n] = $3 }
    END { for (i = 1; i <= n; i++) print h[i] }' "$state/deploy.log" 2>/dev/null || true
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
get() { # PORT PATH [HEADERS]: the HTTP status of GET PATH on that loopback port (bash only, no curl)
  # shellcheck disable=SC2016  # expanded by the inner bash, from its arguments
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.0\r\n%s\r\n" "$2" "$3" >&3 &&
    head -c 12 <&3' _ "$1" "$2" "${3:-}" 2>/dev/null | cut -d' ' -f2
}
readyz() { get "$1" /readyz; }  # PORT
gate() { # PORT: the key pages, asked as nginx asks (the site's Host, https): a 5xx, 400 or no answer refuses it
  local host path code
  # The container's ALLOWED_HOSTS comes from .env alone (env_file), whatever this shell holds: its first name.
  host=$(sed -n 's/^ALLOWED_HOSTS=//p' .env 2>/dev/null | tail -n 1 | cut -d, -f1 | tr -d ' "'"'")
  host=${host#.} && host=${host/#\*/localhost} && host=${host:-localhost}
  for path in "${pages[@]}"; do
    code=$(get "$1" "$path" "Host: $host"$'\r\n'"X-Forwarded-Proto: https"$'\r\n')
    # 400: Django refused the site's own name (ALLOWED_HOSTS), as it would every visitor's request.
    [[ -n $code && $code != 5* && $code != 400 ]] || { echo "error: GET $path (Host $host, https) answered ${code:-nothing}"; return 1; }
    echo "GET $path: $code"
  done
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
  local image=$1 id old='' serving recorded
  rev=${image#"$site:"}  # a revision, or a pulled image's digest reference
  config=$(configuration "$image") || fail "docker compose config failed: check .env and docker-compose.yml"
  id=$(container "$site")
  if [[ -n $id && $(docker inspect -f '{{.State.Running}}' "$id") == true ]]; then
    old=$(scripts/image.sh name "$site" "$id")
    from=${old#"$site:"}
    if [[ $(docker image inspect -f '{{.Id}}' "$image") == $(docker inspect -f '{{.Image}}' "$id") &&
      $(upstream_port) == "$port" && $(readyz "$port") == 200 ]]; then
      # The configuration the last successful deploy or rollback recorded (deploy.log's 8th column).
      recorded=$(awk -F'\t' '$5 == "ok" { c = $8 } END { print c }' "$state/deploy.log" 2>/dev/null || true)
      if [[ $config == "$recorded" ]]; then
        echo "$rev already serves with this configuration: nothing to do"
        outcome=unchanged
        return
      fi
      [[ -n $recorded ]] || recorded="none recorded yet"
      echo "$rev serves, but not with this configuration (.env, docker-compose.yml; recorded: $recorded): switching to it"
    fi
  fi
  serving="${old:-the old version} still serves"
  # An nginx that does not read the upstream file would never leave the old container: refuse first.
  "${nginx[@]}" -T 2>/dev/null | grep -F "# configuration file $upstream:" >/dev/null ||  # not -q: SIGPIPE
    fail "nginx does not include $upstream: install the site's nginx file (make nginx-site; README, VPS guide)"
  # Migrations the database lacks: a backup first (scripts/backup.sh), so `make restore` can undo them.
  # A database out of reach has nothing to keep: prepare, next, says why.
  if [[ $(setting BACKUP_BEFORE_MIGRATIONS true) == true ]] && next "$image" run --rm --no-deps -T --entrypoint sh \
    app -c 'python manage.py check_database && ! python manage.py migrate --check' >/dev/null 2>&1; then
    step "back up the database: $rev has migrations it lacks" scripts/backup.sh backup "before-$rev" ||
      { discard_next "$image"; fail "the backup before $rev's migrations failed: ${cause:-see above}; $serving, untouched"; }
  fi
  step "prepare $rev from its image: database, static files, migrations (nothing running is touched)" \
    next "$image" run --rm --no-deps -T app prepare ||
    { discard_next "$image"; fail "$rev failed to prepare: ${cause:-see above}; $serving, untouched"; }
  if [[ -n $old && $(upstream_port) != "$next_port" ]]; then  # something serves: hand over to -next first
    if ! { step "start $rev as $site-next (127.0.0.1:$next_port)" next "$image" up -d --no-build --pull never --force-recreate &&
      step "wait until $site-next answers /readyz" wait_ready "$site-next" "$next_port" &&
      step "ask $site-next for ${pages[*]} as nginx would (any 5xx refuses it)" gate "$next_port" &&
      step "point nginx at $site-next and reload it gracefully" point_nginx "$next_port"; }; then
      discard_next "$image"
      fail "$rev did not take over: ${cause:-see above}; $serving"
    fi
    step "wait until nginx has no connection left to 127.0.0.1:$port" drain "$port"
    serving="$rev serves from $site-next"
  fi
  if ! { step "recreate $site with $rev (127.0.0.1:$port)" home "$image" up -d --no-build --pull never --force-recreate &&
    step "wait until $site answers /readyz" wait_ready "$site" "$port" &&
    step "ask $site for ${pages[*]} as nginx would (any 5xx refuses it)" gate "$port" &&
    step "point nginx back at $site and reload it gracefully" point_nginx "$port"; }; then
    fail "$site did not come back with $rev: ${cause:-see above}; $serving"
  fi
  step "wait until nginx has no connection left to 127.0.0.1:$next_port" drain "$next_port"
  step "remove $site-next" next "$image" down || echo "warning: $site-next did not stop cleanly; $rev serves"
  docker tag "$image" "$site:latest"
  echo "$rev serves (127.0.0.1:$port)"
}
prune() { # untag $site's images but the serving, the rollback target and the last $keep deployed (deploy.log)
  local target=${from:-} kept
  [[ $target != "$rev" ]] || target=$(history | tail -n 2 | head -n 1)  # the same revision: the one before it
  mapfile -t kept < <(awk -F'\t' '$5 == "ok" { print $3 }' "$state/deploy.log" 2>/dev/null | tail -n "$keep")
  scripts/image.sh prune "$site" "$rev" "$target" "${kept[@]}"
}

begin() { # ACTION [COMMAND..]: tools, root, the lock (a second deploy refuses at once), COMMAND, the log line at the end
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
  "${@:2}"  # (a pull) before the log line is armed: its refusal leaves deploy.log as it was
  outcome=failed
  trap 'printf "%s\t%s\t%s\t%s\t%s\t%ss\t%s\t%s\n" "$(date -u +%FT%TZ)" "$action" "${rev:-?}" "$who" \
    "$outcome${failed_step:+: $failed_step}" "$SECONDS" "${from:--}" "${config:--}" >>"$state/deploy.log"' EXIT
}

case "${1:-}" in
  deploy)
    if [[ -n ${2:-} ]]; then  # IMAGE=: the registry's image (the one CI tested), pulled, never built here
      begin deploy pull "$2"
    else
      rev=${REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null)} || true
      [[ -n $rev ]] || fail "not a git checkout: name the version, e.g. REVISION=v1.2 make deploy"
      if [[ -z ${REVISION:-} && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        rev=$rev-dirty-$(date -u +%Y%m%d%H%M%S)  # uncommitted changes: never reuse the commit's tag
      fi
      begin deploy
      step "build $site:$rev" env REVISION="$rev" APP_IMAGE="$site:$rev" docker compose -p "$site" build app ||
        fail "the build failed: ${cause:-see above}; nothing running was touched"
      image=$site:$rev
    fi
    switch_to "$image"
    [[ $outcome == unchanged ]] || outcome=ok
    step "prune images of $site (keep the last $keep, the serving and the rollback target)" prune
    ;;
  rollback)
    begin rollback
    if [[ -n ${2:-} ]]; then
      rev=$2
      echo "rolling back to $rev, as named"
    else
      mapfile -t deployed < <(history)
      n=${#deployed[@]}
      ((n >= 2)) || fail "no revision deployed before ${deployed[0]:-this one} in $state/deploy.log: name one, make rollback REV=<revision>"
      rev=${deployed[n - 2]}
      further="nowhere (none deployed earlier)" && ((n < 3)) || further="back to ${deployed[n - 3]}"
      echo "rolling back from ${deployed[n - 1]} to $rev, deployed before it; another make rollback goes $further"
    fi
    image=$site:$rev
    [[ $rev != *@sha256:* ]] || pull "$rev"  # a digest reference: pulled again if pruned
    docker image inspect "$image" >/dev/null 2>&1 ||
      fail "no image $image on this host; kept: $(docker image ls "$site" --format '{{.Tag}}' | tr '\n' ' ')"
    switch_to "$image"
    [[ $outcome == unchanged ]] || outcome=ok
    ;;
  status)
    for project in "$site" "$site-next"; do
      id=$(container "$project")
      [[ -n $id ]] || continue
      printf '%-12s %s\n' "$project" "$(docker inspect -f '{{.Config.Image}} revision {{index .Config.Labels "org.opencontainers.image.revision"}}{{with index .Config.Labels "org.opencontainers.image.version"}}{{if ne . "dev"}} version {{.}}{{end}}{{end}} {{.State.Status}}{{if and .State.Running .State.Health}} ({{.State.Health.Status}}){{end}}' "$id")"
    done
    shown=$(upstream_port)
    printf 'nginx        %s (%s)\n' "${shown:+127.0.0.1:}${shown:-no upstream file}" "$upstream"
    mapfile -t deployed < <(history)
    target=none && ((${#deployed[@]} < 2)) || target=${deployed[${#deployed[@]} - 2]}
    [[ $target == none || $target == *@* ]] || target=$site:$target  # a digest reference is its own name
    printf 'rollback to  %s (make rollback; deployed, oldest first: %s)\n' "$target" "${deployed[*]:-none}"
    printf 'images       %s\n' "$(docker image ls "$site" --format '{{.Tag}}' | tr '\n' ' ')"
    [[ ! -s $state/deploy.log ]] || { echo "last deploys ($state/deploy.log):"; tail -n 5 "$state/deploy.log"; }
    ;;
  *) fail "usage: scripts/deploy.sh deploy [IMAGE] | rollback [REVISION] | status" ;;
esac

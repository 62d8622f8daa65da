#!/usr/bin/env bash
# The site's database backups: make backup | backups | backup-schedule (docs/backups.md). Restores and
# the drill are scripts/restore.sh, which reads the settings and helpers here.
#   backup [LABEL]  pg_dump -Fc over the site's own path into BACKUP_DIR (root only), a .sha256 beside
#                   it, then retention (the last 24 hours, the newest of the last BACKUP_KEEP_DAILY days
#                   and BACKUP_KEEP_WEEKLY weeks), then BACKUP_COPY_COMMAND "$1"=dump "$2"=checksum.
#   list            the backups: size, age, revision.
#   schedule        installs backup/site-backup.*: the systemd timer (or the cron line), backup + drill.
#   before-start    make up's: a backup when the image to start has migrations the database lacks.
set -euo pipefail
umask 077  # every file written here is root's alone
cd "$(dirname "$0")/.."

setting() { # NAME DEFAULT: the environment first, then .env (as compose reads it), then DEFAULT
  local value=${!1-}
  [[ -n $value ]] || value=$(dotenv "$1" "$2")
  echo "${value:-$2}"
}
dotenv() { # NAME DEFAULT: .env alone: DB_* are what the container gets (env_file), whatever the shell says
  local value
  value=$(sed -n "s/^$1=//p" .env 2>/dev/null | tail -n 1)
  value=${value#[\"\']} && value=${value%[\"\']}  # compose's optional quotes
  echo "${value:-$2}"
}
action=${1:-}
fail() { echo "${action:-backup}: error: $*" >&2; exit 1; }
# make up runs before-start on every site: the trial (no DB_NAME) has nothing here to back up.
[[ $action != before-start || -n $(dotenv DB_NAME '') ]] || exit 0
[[ -e .env ]] || fail "no .env: backups are for a production site (DB_NAME in .env; make env)"
site=$(setting SITE sitekit)
db=$(dotenv DB_NAME '') host=$(dotenv DB_HOST /var/run/postgresql)
user=$(dotenv DB_USER "$db")
socket=$(setting DB_SOCKET_DIR /var/run/postgresql)
port=$(setting BACKUP_DB_PORT "$(dotenv DB_PORT 5432)")  # PostgreSQL itself: 5432 when the site goes through pgbouncer
dir=$(setting BACKUP_DIR "/var/backups/$site")  # outside the clone: nothing nginx serves is near it
daily=$(setting BACKUP_KEEP_DAILY 7) weekly=$(setting BACKUP_KEEP_WEEKLY 4)
admin=$(setting BACKUP_ADMIN postgres)  # the host's superuser (peer over the socket): creates and renames databases
[[ -n $db ]] || fail "DB_NAME is not set in .env: the trial's SQLite in ./data is not backed up here"
[[ $daily =~ ^[1-9][0-9]*$ && $weekly =~ ^[0-9]+$ ]] || fail "BACKUP_KEEP_DAILY must be >= 1, BACKUP_KEEP_WEEKLY >= 0"
export PGCONNECT_TIMEOUT=10

if [[ $host == /* ]]; then # the socket the container mounts: peer authentication, as the container's uid
  uid=$(setting APP_UID 33) gid=$(setting APP_GID 33)  # the site's own account (make account), as compose runs it
  as_site() { setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME=/ "$1" -w -h "$socket" -p "$port" -U "$user" "${@:2}"; }
  as_admin() { runuser -u "$admin" -- "$1" -w -h "$socket" -p "$port" "${@:2}"; }
else # a database over TCP: the site's password, and its role must be allowed CREATEDB to restore
  [[ $host != host.docker.internal ]] || host=127.0.0.1  # the containers' name for this host
  password=$(dotenv DB_PASSWORD '')
  file=$(dotenv DB_PASSWORD_FILE '') && [[ -z $file || ! -r $file ]] || password=$(<"$file")
  as_site() { PGPASSWORD=$password "$1" -w -h "$host" -p "$port" -U "$user" "${@:2}"; }
  as_admin() { as_site "$@"; }
fi
sql() { as_admin psql -X -qAt -v ON_ERROR_STOP=1 -d "${2:-postgres}" -c "$1"; }
last_error() { # the line that says why: the last error line of a tool's output, else its last line
  local text
  text=$(grep -v '^\s*$') || true
  { grep -E 'error|ERROR|FATAL' <<<"$text" || echo "$text"; } | tail -n 1 | sed 's/^[a-z_]*: \(error: \)\?//'
}

folder() { [[ -d $dir ]] || fail "no backup folder $dir (make backup creates it)"; }
backups() { # newest first, the site's dumps only
  find "$dir" -maxdepth 1 -name "$site-*Z-*.dump" -printf '%f\n' | grep -E "^$site-[0-9]{8}T[0-9]{6}Z-" | sort -r || true
}
stamp() { local name=${1#"$site"-} && echo "${name:0:16}"; }  # NAME: its UTC time, 20261206T211500Z
epoch() { local t && t=$(stamp "$1") && date -ud "${t:0:8} ${t:9:2}:${t:11:2}:${t:13:2}" +%s; }
revision_of() { local name=${1#"$site"-} && name=${name:17} && echo "${name%.dump}"; }
app_containers() { # the running app containers of this clone's compose projects (the site, its -next)
  docker ps -q --filter "label=com.docker.compose.project.working_dir=$PWD" \
    --filter label=com.docker.compose.service=app --filter label=com.docker.compose.oneoff=False
}
serving_revision() {
  local id
  id=$(app_containers | head -n 1)
  [[ -n $id ]] || { echo none; return; }
  docker inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$id" | tr -c 'A-Za-z0-9._\n-' _
}

backup() { # [LABEL]: e.g. before-<revision>, from the deploy
  [[ $EUID == 0 ]] || fail "run it as root (sudo make backup): the folder is root's, peer login the site account's"
  mkdir -p "$dir" 2>/dev/null && chmod 0700 "$dir" && [[ -w $dir ]] || fail "cannot create or write $dir"
  exec 9>"$dir/.lock"
  flock -w 600 9 || fail "another backup of $site holds $dir/.lock"
  local name output
  name="$site-$(date -u +%Y%m%dT%H%M%SZ)-$(serving_revision)${1:+-$1}.dump"
  partial="$dir/.$name.tmp"  # global: the trap runs after this function returns
  trap 'rm -f "$partial"' EXIT
  # One snapshot (pg_dump's own transaction): consistent while the site writes. Written, flushed, renamed.
  output=$(as_site pg_dump -Fc -d "$db" 2>&1 >"$dir/.$name.tmp") || fail "pg_dump failed: $(last_error <<<"$output"); no backup written"
  sync "$dir/.$name.tmp" 2>/dev/null || fail "cannot write $dir: $(sync "$dir/.$name.tmp" 2>&1 | last_error)"
  (cd "$dir" && sha256sum ".$name.tmp" | sed "s/ \.$name\.tmp$/ $name/" >"$name.sha256") ||
    fail "cannot write $dir/$name.sha256 (disk full?); no backup written"
  mv "$dir/.$name.tmp" "$dir/$name"
  echo "backup: $dir/$name ($(du -h "$dir/$name" | cut -f1))"
  retention
  local copy
  copy=$(setting BACKUP_COPY_COMMAND '')
  [[ -z $copy ]] || sh -c "$copy" backup-copy "$dir/$name" "$dir/$name.sha256" ||
    fail "BACKUP_COPY_COMMAND failed: $dir/$name is on this host only"
}

retention() { # keep every backup of the last 24 hours, the newest of each of the last $daily days and
  local file day week days=0 weeks=0 keep now  # $weekly weeks (with backups), the labelled ones of those days
  declare -A seen_day=() kept_day=() seen_week=()
  now=$(date -u +%s)
  for file in $(backups); do
    day=$(stamp "$file") && day=${day:0:8} && week=$(date -ud "$day" +%G%V) && keep=
    (($(epoch "$file") < now - 86400)) || keep=1  # a manual backup of this morning is never the one to go
    if [[ -z ${seen_day[$day]-} ]]; then
      seen_day[$day]=1
      ((days >= daily)) || { days=$((days + 1)) && kept_day[$day]=1 && keep=1; }
    elif [[ -n ${kept_day[$day]-} && $(revision_of "$file") == *-before-* ]]; then keep=1; fi
    if [[ -z ${seen_week[$week]-} ]]; then
      seen_week[$week]=1
      ((weeks >= weekly)) || { weeks=$((weeks + 1)) && keep=1; }
    fi
    [[ -n $keep ]] || { rm -f "$dir/$file" "$dir/$file.sha256" && echo "backup: removed $file (retention)"; }
  done
}

list() {
  local file now age
  folder
  now=$(date -u +%s)
  printf '%-58s %8s %8s  %s\n' BACKUP SIZE AGE REVISION
  for file in $(backups); do
    age=$((now - $(epoch "$file")))
    if ((age < 3600)); then age="$((age / 60))m"; elif ((age < 172800)); then age="$((age / 3600))h"; else age="$((age / 86400))d"; fi
    printf '%-58s %8s %8s  %s\n' "$file" "$(du -h "$dir/$file" | cut -f1)" "$age" "$(revision_of "$file")"
  done
  echo "in $dir (newest first; make restore FILE=<name>)"
}

schedule() { # the nightly run: a systemd timer where systemd runs, else a line in cron.d
  local systemd=${SYSTEMD_DIR:-/etc/systemd/system} cron=${CRON_DIR:-/etc/cron.d} unit
  render() { sed -e "s|@DIR@|$PWD|g" -e "s|@SITE@|$site|g" "backup/site-backup.$1"; }
  if [[ -d /run/systemd/system || -n ${SYSTEMD_DIR-} ]]; then
    for unit in service timer; do render "$unit" >"$systemd/$site-backup.$unit" || fail "cannot write $systemd"; done
    chmod 0644 "$systemd/$site-backup".*
    ${SYSTEMCTL:-systemctl} daemon-reload && ${SYSTEMCTL:-systemctl} enable --now "$site-backup.timer"
    echo "schedule: $systemd/$site-backup.timer runs the backup and the drill nightly (systemctl list-timers)"
  else
    { render cron >"$cron/$site-backup" && chmod 0644 "$cron/$site-backup"; } || fail "cannot write $cron"
    echo "schedule: $cron/$site-backup runs the backup and the drill nightly"
  fi
}

before_start() { # make up: a backup first when the image about to start has migrations an existing database lacks
  [[ $(setting BACKUP_BEFORE_MIGRATIONS true) == true ]] || return 0
  [[ $EUID == 0 ]] || { echo "make up: not root, so no backup before migrations (sudo make up takes one)" >&2; return 0; }
  # A first start (no django_migrations) or a database out of reach (up.sh says why): nothing to keep.
  [[ -n $(as_site psql -X -qAt -d "$db" -c "SELECT to_regclass('django_migrations')" 2>/dev/null) ]] || return 0
  docker compose build -q app >/dev/null 2>&1 || return 0  # a failing build: up.sh shows it
  ! docker compose run --rm --no-deps -T --entrypoint python app manage.py migrate --check >/dev/null 2>&1 || return 0
  echo "make up: the new image has migrations the database lacks: a backup first"
  backup "before-${REVISION:-start}"
}

[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0  # sourced by scripts/restore.sh: the settings and helpers only
case $action in
  backup) backup "${2:-}" ;;
  list) list ;;
  schedule) schedule ;;
  before-start) action=backup && before_start ;;
  *) fail "usage: scripts/backup.sh backup [LABEL] | list | schedule | before-start" ;;
esac

#!/usr/bin/env bash
# Restores: make restore [FILE=..] | restore-drill (docs/backups.md); settings as scripts/backup.sh's.
#   restore [FILE]  checksum, archive and owner checked first; the site stopped; the dump restored into
#                   a new database that is then swapped in (the old one kept, renamed); the site started.
#   drill [FILE]    the newest backup restored into a scratch database and checked; exit 0 or 1.
set -euo pipefail
# shellcheck source=backup.sh source-path=SCRIPTDIR
source "$(dirname "$0")/backup.sh"  # settings, connections, the list of backups; cds to the clone

checked() { # FILE: the path of a verified dump of this site's database, or one line and exit 1
  local file=$1 dumped
  [[ -f $file ]] || folder
  [[ -n $file ]] || file=$(backups | head -n 1)
  [[ -n $file ]] || fail "no backup of $site in $dir"
  [[ -f $file ]] || file=$dir/$file
  [[ -f $file ]] || fail "no backup $1 (neither a file nor in $dir; make backups lists them)"
  [[ -r $file.sha256 ]] || fail "$file has no $(basename "$file").sha256 beside it: refused, nothing touched"
  (cd "$(dirname "$file")" && sha256sum --status -c "$(basename "$file").sha256" 2>/dev/null) ||
    fail "$file does not match its checksum (corrupt or truncated): refused, nothing touched"
  dumped=$(pg_restore --list "$file" 2>&1) ||
    fail "$file is not a pg_dump archive ($(last_error <<<"$dumped")): refused, nothing touched"
  dumped=$(sed -n 's/^;[[:space:]]*dbname: //p' <<<"$dumped")
  [[ $dumped == "$db" ]] || fail "$file is a dump of database '$dumped', this site's is '$db': refused, nothing touched"
  echo "$file"
}

into() { # DATABASE FILE: a new database holding the dump, whole or not at all (root reads the file)
  local output
  output=$(sql "DROP DATABASE IF EXISTS \"$1\"" 2>&1 && sql "CREATE DATABASE \"$1\" OWNER \"$user\" TEMPLATE template0" 2>&1 &&
    as_admin pg_restore --single-transaction --exit-on-error --no-owner --no-acl --role="$user" -d "$1" <"$2" 2>&1) ||
    { sql "DROP DATABASE IF EXISTS \"$1\"" >/dev/null 2>&1; last_error <<<"$output"; return 1; }
}

restore() {
  [[ $EUID == 0 ]] || fail "run it as root (sudo make restore): it stops the site and renames databases"
  local file ids kept output
  file=$(checked "${1:-}")
  mkdir -p "${DEPLOY_DIR:-.deploy}" && exec 8>"${DEPLOY_DIR:-.deploy}/lock"
  flock -n 8 || fail "a deploy or rollback is running (${DEPLOY_DIR:-.deploy}/lock): try again after it"
  [[ ! -d $dir ]] || { exec 9>"$dir/.lock" && flock -w 600 9; } || fail "a backup of $site holds $dir/.lock"
  kept="${db:0:40}_before_restore_$(date -u +%Y%m%d%H%M%S)"
  mapfile -t ids < <(app_containers)
  # No writes the restore would discard: the site is down (nginx answers 502) until the swap is done.
  echo "restore: stopping the site (${#ids[@]} container(s)): it answers 502 until it is back"
  ((${#ids[@]} == 0)) || docker stop -t 30 "${ids[@]}" >/dev/null
  trap 'echo "restore: starting the site again on its database, untouched" >&2; ((${#ids[@]} == 0)) || docker start "${ids[@]}" >/dev/null' EXIT
  echo "restore: $file into a new database ${db}_restoring"
  output=$(into "${db}_restoring" "$file") || fail "pg_restore failed: $output; the database is untouched"
  output=$(sql "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '$db' AND pid <> pg_backend_pid()" 2>&1 &&
    sql "BEGIN; $( [[ -z $(sql "SELECT 1 FROM pg_database WHERE datname = '$db'") ]] || echo "ALTER DATABASE \"$db\" RENAME TO \"$kept\";")
      ALTER DATABASE \"${db}_restoring\" RENAME TO \"$db\"; COMMIT;" 2>&1) ||
    { sql "DROP DATABASE IF EXISTS \"${db}_restoring\"" >/dev/null 2>&1; fail "swap failed: $(last_error <<<"$output")"; }
  trap - EXIT
  echo "restore: $db now holds $(basename "$file"); the previous database is kept as $kept (drop it when done)"
  ((${#ids[@]} == 0)) || { docker start "${ids[@]}" >/dev/null && wait_healthy "${ids[@]}"; }
  echo "restore: done; the site serves the restored data"
}
wait_healthy() { # IDS...: the entrypoint sees a new database and prepares it (migrate) before serving
  local id deadline=$((SECONDS + 180))
  for id in "$@"; do
    until [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}' "$id") == healthy ]]; do
      ((SECONDS < deadline)) || fail "the site did not become healthy after the restore: docker logs $id"
      sleep 1
    done
  done
}

drill() { # the newest backup into a scratch database: it restores, its migrations are the code's, its rows are the dump's
  scratch="${db:0:50}_drill"  # global: the trap runs after this function returns
  local file output image code recorded table counted restored problems=()
  file=$(checked "${1:-}")
  trap 'sql "DROP DATABASE IF EXISTS \"$scratch\"" >/dev/null 2>&1 || true' EXIT
  output=$(into "$scratch" "$file") || fail "$(basename "$file") does not restore: $output"
  image=$(docker inspect -f '{{.Image}}' "$(app_containers | head -n 1)" 2>/dev/null) || image=$(setting APP_IMAGE "$site:latest")
  code=$(docker run --rm --env-file .env -e DJANGO_SETTINGS_MODULE=app.settings --entrypoint python "$image" -c 'import django; django.setup()
from django.db.migrations.loader import MigrationLoader as L
print("\n".join(sorted(f"{a}.{n}" for a, n in L(None, ignore_no_migrations=True).disk_migrations)))' 2>&1) ||
    fail "cannot list the code's migrations from $image: $(last_error <<<"$code")"
  recorded=$(sql "SELECT app || '.' || name FROM django_migrations ORDER BY 1" "$scratch" 2>&1) || recorded=
  [[ $recorded == "$(sort <<<"$code")" ]] ||
    problems+=("migrations differ from the code's ($(comm -3 <(sort <<<"$code") <(sort <<<"$recorded") | wc -l) apart)")
  while read -r table counted; do  # every table's rows as many as the dump's COPY holds
    restored=$(sql "SELECT count(*) FROM $table" "$scratch")
    [[ $restored == "$counted" ]] || problems+=("$table has $restored rows, the dump $counted")
    [[ $table != public.app_site || $counted != 0 || $(sql "SELECT count(*) FROM $table" "$db" 2>/dev/null) == 0 ]] ||
      problems+=("$table is empty in the backup but not in the site's database")
  done < <(pg_restore --data-only -f - "$file" | awk '/^COPY .* FROM stdin;$/ { t = $2; n = 0; next }
    $0 == "\\." && t { print t, n; t = ""; next } t { n++ }')
  ((${#problems[@]} == 0)) || fail "$(basename "$file"): ${problems[*]}"
  echo "drill: ok: $(basename "$file") restores; $(wc -l <<<"$recorded") migrations as the code's; rows as dumped ($(sql "SELECT count(*) FROM public.app_site" "$scratch") sites)"
}

case $action in
  restore) restore "${2:-}" ;;
  drill) drill "${2:-}" ;;
  *) fail "usage: scripts/restore.sh restore [FILE] | drill [FILE]" ;;
esac

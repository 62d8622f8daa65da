#!/bin/sh
# Installs the OS packages one build stage needs, on Alpine (apk) or Debian (apt), so the Dockerfile
# builds on python:*-alpine, python:*-slim and the offline Debian base alike.
#   os-packages.sh build     compiler and libpq headers: psycopg2 is compiled from source
#   os-packages.sh runtime   libpq alone: what the compiled psycopg2 links against
set -eu

case "${1:-}" in
  build)   apk_packages="build-base libpq-dev"; apt_packages="build-essential libpq-dev" ;;
  runtime) apk_packages="libpq";                apt_packages="libpq5" ;;
  *) echo "usage: $0 build|runtime" >&2; exit 2 ;;
esac

if command -v apk >/dev/null 2>&1; then
  # --no-cache: fetch the index for this install only, leave nothing behind in the layer.
  # shellcheck disable=SC2086  # the package list is meant to split into words
  apk add --no-cache $apk_packages
else
  # Debian's own Python (the offline base image) ships its headers separately; python:*-slim has them.
  # Those of the Python that runs, not the suite's default: e.g. 3.14 on a suite whose python3 is 3.13.
  version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$1" = build ] && [ "$(dpkg-query -W -f='${Status}' "python$version" 2>/dev/null)" = "install ok installed" ]; then
    apt_packages="$apt_packages libpython$version-dev"
  fi
  apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $apt_packages
  # The package index, downloaded .debs and apt's caches: tens of MB the image never needs again.
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

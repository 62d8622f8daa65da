#!/bin/sh
# Builds a Python base image from Debian packages alone: for air-gapped machines and CI, where
# python:3.14-alpine cannot be pulled from a registry. It stands in for python:*-slim:
# Python 3 with venv and headers, on Debian, tagged for the Dockerfile's PYTHON_IMAGE argument.
#
#   scripts/build-offline-base.sh [TAG]     prints the tag (default: the one below) on stdout
#   PYTHON_IMAGE=TAG in .env (or the shell), then build as usual
# A tooling script: it never enters the image (docker/ holds what does).
#
# Needs root (mmdebstrap unpacks as root), mmdebstrap and a Docker engine; reaches only Debian's mirror.
set -eu

tag=${1:-sitekit/python:3.13-trixie}
suite=${DEBIAN_SUITE:-trixie}   # trixie ships Python 3.13, the newest Debian has
# Where TLS is intercepted by a proxy, containers must trust the host's CA bundle to reach PyPI.
host_ca=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if docker image inspect "$tag" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
  echo "base image $tag exists (REBUILD=1 to build it again)" >&2
  echo "$tag"
  exit 0
fi

tarball=$(mktemp)
trap 'rm -f "$tarball"' EXIT

# minbase: dpkg, apt and essentials only. Python's headers are not included: the Dockerfile's
# build stage installs them (docker/os-packages.sh), so they stay out of the final image.
# ($1 in a hook is mmdebstrap's, not this script's.)
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=minbase --format=tar \
  --include=python3,python3-venv,python-is-python3,ca-certificates \
  --customize-hook="upload $host_ca /etc/ssl/certs/host-ca-bundle.crt" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$suite" "$tarball"

# docker import gives a single-layer image; --change sets what a Dockerfile base would.
docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >/dev/null
echo "built $tag: $(docker run --rm "$tag" python --version)" >&2
echo "$tag"

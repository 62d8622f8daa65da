#!/bin/sh
# Builds a Python base image from Debian packages alone: for air-gapped machines and CI, where
# python:3.14-alpine cannot be pulled from a registry. It stands in for python:*-slim:
# Python 3.14 (the default image's) with venv, on Debian, tagged for the Dockerfile's PYTHON_IMAGE.
#
#   scripts/build-offline-base.sh [TAG]     prints the tag (default: the one below) on stdout
#   PYTHON_IMAGE=TAG in .env (or the shell), then build as usual
#   DEBIAN_SUITE=trixie PYTHON_VERSION=3.13 scripts/build-offline-base.sh    Debian stable's Python
# A tooling script: it never enters the image (docker/ holds what does).
#
# Needs root (mmdebstrap unpacks as root), mmdebstrap and a Docker engine; reaches only Debian's mirror.
set -eu

suite=${DEBIAN_SUITE:-unstable}        # unstable packages 3.14 (python3 is 3.14 there); trixie has 3.13
python=${PYTHON_VERSION:-3.14}         # the Python of the default image, python:3.14-alpine
tag=${1:-sitekit/python:$python-debian-$suite}
# The unstable snapshot reachable here is frozen, its Release file past Valid-Until: apt refuses it
# unless told. Kept in the image's apt config, as the build stage's apt-get reads it too.
valid_until=${CHECK_VALID_UNTIL:-false}   # true where the mirror is live
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
# python3 and python-is-python3: `python3` and `python` are the suite's default Python, checked below.
# ($1 in a hook is mmdebstrap's, not this script's.)
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=minbase --format=tar \
  --aptopt="Acquire::Check-Valid-Until \"$valid_until\"" \
  --include="python$python,python$python-venv,python3,python3-venv,python-is-python3,ca-certificates" \
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
found=$(docker run --rm "$tag" python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$found" != "$python" ]; then
  docker image rm "$tag" >/dev/null
  echo "build-offline-base: $suite's python is $found, not $python (set PYTHON_VERSION or DEBIAN_SUITE)" >&2
  exit 1
fi
echo "built $tag: $(docker run --rm "$tag" python --version)" >&2
echo "$tag"

#!/bin/sh
# `make lock` runs this inside the base image, so the pins (and wheel hashes) are resolved for the
# Python and platform the container really runs. A tooling script: it never enters the image.
set -eu
sh docker/os-packages.sh build >/dev/null   # psycopg2's metadata build needs pg_config
python -m venv /tmp/pip-tools
# pip-tools is pinned here, the one place it is installed (requirements-dev leaves it out).
# In layer order: each .in holds the one below it to the pins just compiled (-c).
/tmp/pip-tools/bin/pip install --quiet pip-tools==7.6.2
for name in requirements requirements-test requirements-dev; do
  # --strip-extras and --allow-unsafe: the future defaults of pip-tools; hashes pin every file.
  /tmp/pip-tools/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --output-file "$name.txt" "$name.in"
done
chown "${HOST_UID:-0}:${HOST_GID:-0}" requirements.txt requirements-test.txt requirements-dev.txt

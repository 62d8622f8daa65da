# Prototype, with pool.patch: psycopg 3 and its connection pool (Django >= 5.1 uses them when
# OPTIONS["pool"] is set). Pure-Python psycopg: the image's libpq is all it needs.
# Built on the patched code's image (BASE), as an extra layer.
ARG BASE
FROM ${BASE}
USER 0:0
RUN pip install --no-cache-dir psycopg==3.3.9 psycopg-pool==3.3.3
USER 33:33

"""Worker recycling (gunicorn's max_requests, docker/gunicorn.conf.py) under visitors through the
nginx site: a worker that ends after its quota of requests costs no request, not even a form
submission on a connection nginx kept alive to it (which nginx never retries: not idempotent)."""

import re
import time

import pytest

from tests.harness import SESSION, Nginx, Stack, site_env
from tests.harness.traffic import Load

LIMIT = 20  # requests per worker, then it is recycled: every few seconds under the load below
RECYCLES = 40  # the red team saw 1 submission in 129 lost: this many recycles make a loss likely


@pytest.fixture
def recycling(e2e_root, stack, host_db):
    """The shipped stack on a database of its own, its workers recycled after LIMIT requests."""
    database = f"recycle_{SESSION}"
    host_db.psql(f'CREATE DATABASE "{database}" OWNER "{host_db.user}"', database="postgres")
    app = Stack(e2e_root, "sitekit-recycle", image=stack.image)
    app.nginx = Nginx(e2e_root, app)
    app.cluster, app.database = host_db, database
    # gunicorn applies GUNICORN_CMD_ARGS over its config file: the low limit for this stack alone.
    limit = f"--max-requests {LIMIT} --max-requests-jitter 0"
    app.write_env(site_env(host_db, app.nginx.https_port, DB_NAME=database, GUNICORN_CMD_ARGS=limit))
    try:
        app.up()
        app.nginx.start()
        yield app
    finally:
        print(app.logs()[-3000:])
        app.nginx.stop()
        app.down()
        host_db.psql(f'DROP DATABASE "{database}" WITH (FORCE)', database="postgres")


def test_recycled_workers_cost_no_request_through_nginx(recycling):
    def recycles():
        return len(re.findall("Maximum request limit", recycling.logs()))

    with Load(recycling, writers=4) as load:
        deadline = time.monotonic() + 150
        while recycles() < RECYCLES and time.monotonic() < deadline:
            time.sleep(1)
    recycled = recycles()
    posts = sum(1 for answer in load.answers if answer[0] == "POST")
    print(f"{recycled} recycles, {len(load.answers)} requests, {posts} form submissions")
    assert recycled >= RECYCLES, recycling.logs()[-3000:]
    assert load.failures() == [], recycling.logs()[-3000:]
    assert load.rows() == len(load.posted) and len(load.posted) >= 50

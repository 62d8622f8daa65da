"""The database's connection slots under a crowd (issue 17, item 1): the site's requests in progress
are bounded (WEB_CONCURRENCY x REQUESTS_PER_WORKER in docker/gunicorn.conf.py) below its role's
CONNECTION LIMIT (the VPS guide's line), so a crowd gets quick 503s, never a 500, the site never
asks PostgreSQL for more than the role may have, and another database on the cluster keeps its slots.
/readyz tells a database without a free slot ("busy") from one that cannot be reached."""

import collections
import os
import secrets
import subprocess
import threading
import time

import pytest

from tests.harness import DOCKER_POOLS, Cluster, Nginx, docker_gateway, wait_for
from tests.harness.http import fresh_client, request

ROLE_LIMIT = 35  # the VPS guide: WEB_CONCURRENCY (3) x 10 requests per worker, and a few to spare


@pytest.fixture(scope="module")
def small_cluster(docker):
    """A host PostgreSQL with few slots (45, 3 of them the superuser's): the site's role limited as
    the guide says, and a neighbour's role, another site's database on the same host."""
    cluster = Cluster(listen=("127.0.0.1", docker_gateway()), hba_networks=DOCKER_POOLS).start()
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write("max_connections = 45\n")
    cluster.pg_ctl("restart")
    cluster.roles = {"site": secrets.token_hex(8), "neighbour": secrets.token_hex(8)}
    for role, password in cluster.roles.items():
        limit = ROLE_LIMIT if role == "site" else -1
        cluster.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT {limit}")
        cluster.psql(f"CREATE DATABASE {role} OWNER {role}")
    yield cluster
    cluster.stop()


def connect_as(cluster, role, sql="SELECT 1"):
    """psql over the socket as role: (exit code, output)."""
    env = {**os.environ, "PGPASSWORD": cluster.roles[role]}
    argv = ["psql", "-X", "-qAt", "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", role]
    result = subprocess.run([*argv, "-d", role, "-c", sql], capture_output=True, text=True, env=env)
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.fixture
def site(extra_stacks, small_cluster):
    password = small_cluster.roles["site"]
    app = extra_stacks("sitekit-crowd", small_cluster, DB_NAME="site", DB_USER="site", DB_PASSWORD=password)
    app.up()
    app.nginx = Nginx(app.dir.parent, app).start()
    return app


def test_a_crowd_behind_a_table_lock_gets_503s_never_a_500_and_other_databases_keep_their_slots(
    site, small_cluster
):
    """180 requests at once from six addresses (30 each, under nginx's 32 per address) while a
    migration-like lock holds the table for 6 s: every request in progress waits on a connection."""
    assert site.nginx.request("/")[0] == 200
    log_before = small_cluster.log.read_text()
    lock = subprocess.Popen(
        ["psql", "-X", "-q", "-h", str(small_cluster.socket_dir), "-p", str(small_cluster.port)]
        + ["-U", small_cluster.user, "-d", "site", "-c"]
        + ["BEGIN; LOCK TABLE app_site IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;"],
        env={**os.environ, "PGPASSWORD": small_cluster.password},
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(
        lambda: (
            small_cluster.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock'", "site")
            != "0"
        ),
        timeout=10,
        what="the table lock",
    )
    answers, start = [], threading.Barrier(180)

    def visitor(source):
        start.wait()
        try:
            status, _, body = site.nginx.request("/", source=source, timeout=40)
            answers.append((status, "Busy just now" in body))
        except OSError as exc:
            answers.append((type(exc).__name__, ""))

    clients = [fresh_client() for _ in range(6)]
    threads = [threading.Thread(target=visitor, args=(client,)) for client in clients for _ in range(30)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # the crowd waits on the lock, each request in progress on a connection of its own
    neighbour = connect_as(small_cluster, "neighbour")
    in_use = small_cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'site'", "postgres")
    for thread in threads:
        thread.join()
    lock.wait(timeout=30)

    statuses = collections.Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 503}, statuses  # never a 500, never a dropped connection
    assert statuses[200] >= 10 and statuses[503] >= 10, statuses  # some served, the excess refused at once
    assert all(busy for status, busy in answers if status == 503)  # with a page that says why
    assert neighbour == (0, "1"), neighbour  # another database on the cluster still gets a connection
    assert int(in_use) <= ROLE_LIMIT, in_use
    refused = [line for line in small_cluster.log.read_text()[len(log_before) :].splitlines()
               if "too many" in line or "remaining connection slots" in line]  # fmt: skip
    assert not refused, refused[:3]  # the site never asked PostgreSQL for more than its role may have
    assert site.nginx.request("/")[0] == 200  # and serves again once the crowd has gone


def test_readyz_says_busy_when_the_role_has_no_slot_left_and_unreachable_when_the_database_is_down(
    site, small_cluster
):
    assert request(site.port, "/readyz")[0] == 200
    small_cluster.psql("ALTER ROLE site CONNECTION LIMIT 0")  # every slot the role may have is taken
    try:
        status, _, body = request(site.port, "/readyz")
        page = site.nginx.request("/", source=fresh_client())
    finally:
        small_cluster.psql(f"ALTER ROLE site CONNECTION LIMIT {ROLE_LIMIT}")
    assert (status, '"database busy"' in body) == (503, True), body
    assert page[0] == 503 and "Busy just now" in page[2], page[2][:300]
    assert request(site.port, "/readyz")[0] == 200
    small_cluster.pg_ctl("stop")
    try:
        status, _, body = request(site.port, "/readyz")
    finally:
        small_cluster.pg_ctl("start")
    assert (status, '"database unreachable"' in body) == (503, True), body

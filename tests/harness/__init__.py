"""The harness: the real stack on this machine, for the end-to-end tests (tests/e2e/) and for
`make bench` (tests/bench/). Plain Python, no pytest in it, so the benchmark imports it as the tests do.

- stack.Stack: the project's docker-compose.yml in a copy of the repository; .env written from
  .env.example (envfile). SITE names (projects, image tags) are per session, so runs can overlap.
- nginx.Nginx: the project's nginx site in front of a stack, on free loopback ports.
- pg.Cluster: a throwaway host PostgreSQL (the unit tests use it too); stack.host_database() is
  the one the containers reach; pgbouncer: the socket + peer and pooler paths in front of it.
- http: the one HTTP client; tls: TLS connections made by hand; net.free_port: loopback ports.
- traffic.Load: visitors during a deploy (GETs and form posts through nginx, every answer kept).
"""

from tests.harness.net import free_port
from tests.harness.nginx import Nginx
from tests.harness.pg import Cluster
from tests.harness.stack import (
    BASE_IMAGE,
    DOCKER_POOLS,
    REPO,
    SESSION,
    Stack,
    children,
    cleanup,
    docker_gateway,
    host_database,
    record_build,
    run,
    site_env,
    tag,
    wait_for,
    workdir,
)

__all__ = [
    "BASE_IMAGE", "DOCKER_POOLS", "REPO", "SESSION", "Cluster", "Nginx", "Stack", "children", "cleanup",
    "docker_gateway",
    "free_port", "host_database", "record_build", "run", "site_env", "tag", "wait_for", "workdir",
]  # fmt: skip

"""gunicorn settings for the container. gunicorn supervises the worker processes (restarts a dead
one, recycles them, shuts down gracefully); each worker runs Django's ASGI app under uvicorn.

`python docker/gunicorn.conf.py` only checks the settings (the entrypoint runs it before gunicorn)."""

import os
import socket
import struct
import sys

from app.env import ConfigError, env_int, env_str


def default_gateway(routes="/proc/net/route"):
    """The container's default gateway, from the kernel's routing table; None if there is none."""
    try:
        with open(routes, encoding="ascii") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == "00000000" and int(fields[3], 16) & 0x2:  # to 0.0.0.0/0, via a gateway
                    return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    except (OSError, IndexError, ValueError):
        pass
    return None


try:
    # Workers: WEB_CONCURRENCY, default 3. Not (2 x CPUs) + 1: inside a container gunicorn would
    # count the host's CPUs, not the container's share (gunicorn #2028). Set it per machine.
    workers = env_int("WEB_CONCURRENCY", 3, minimum=1)
    # Trust X-Forwarded-For/-Proto from the container's default gateway: the host's nginx reaches the
    # container through it, whatever network Docker assigned. Without this, uvicorn ignores the
    # headers and Django never learns a request came over HTTPS. FORWARDED_ALLOW_IPS overrides.
    forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", default_gateway() or "127.0.0.1")
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

if __name__ == "__main__":
    sys.exit()  # the entrypoint's check: the settings above are valid

# Requests in progress per worker; past it, 503 at once. Each holds a PostgreSQL connection
# (CONN_MAX_AGE = 0): WEB_CONCURRENCY x this bounds the site's connections, kept below its role's
# CONNECTION LIMIT (docs/operations.md).
REQUESTS_PER_WORKER = 10

# After the checks: importing gunicorn's modules parses WEB_CONCURRENCY, with a traceback if bad.
import asyncio  # noqa: E402
import time  # noqa: E402

from gunicorn.arbiter import Arbiter  # noqa: E402
from uvicorn.server import Server  # noqa: E402
from uvicorn_worker import UvicornWorker  # noqa: E402


class RequestLimit:
    """ASGI wrapper: at most `limit` requests in progress in this worker, the rest answered 503 at
    once. Not uvicorn's limit_concurrency: that counts connections, and nginx's idle kept-alive ones
    would make a worker refuse everything after a burst."""

    def __init__(self, app, limit):
        self.app, self.limit, self.active, self.page = app, limit, 0, None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/healthz":
            return await self.app(scope, receive, send)  # liveness touches no database: always answered
        if self.active < self.limit:
            self.active += 1  # one event loop per worker: no lock needed
            try:
                return await self.app(scope, receive, send)
            finally:
                self.active -= 1
        if self.page is None:
            from django.template.loader import render_to_string  # Django is set up: the app is loaded

            self.page = render_to_string("busy.html").encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"retry-after", b"5")]
        headers.append((b"cache-control", b"no-store"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self.page})


class RecyclingServer(Server):
    """uvicorn's server, but a worker recycled by max_requests closes no idle connection itself: closing
    one races nginx sending a request on it, and nginx never retries a POST (a lost submission, 502)."""

    recycling = False

    async def shutdown(self, sockets=None):
        if not self.should_exit:  # the request limit ended the main loop, not a signal
            self.recycling = True  # from now on every answer says "Connection: close" (closing_app)
            for server in self.servers:
                server.close()  # accept no more connections: the other workers take them
            # Each kept-alive connection ends with such an answer, or nginx closes it when idle
            # (keepalive_timeout 4 s in nginx/site.conf; keepalive = 5 s below closes stragglers).
            deadline = time.monotonic() + self.config.timeout_keep_alive + 1
            while self.server_state.connections and not self.should_exit and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        await super().shutdown(sockets)

    def closing_app(self, app):
        """The ASGI app, its answers saying "Connection: close" once this worker is recycling."""

        async def closing(scope, receive, send):
            async def send_closing(message):
                if self.recycling and message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
                await send(message)

            await app(scope, receive, send_closing if scope["type"] == "http" else send)

        return closing


class DjangoUvicornWorker(UvicornWorker):
    """uvicorn's gunicorn worker with the ASGI lifespan protocol off (Django does not implement it;
    with "auto" every worker logs a misleading "ASGI 'lifespan' protocol appears unsupported"), and
    its requests in progress bounded (RequestLimit)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = RequestLimit(self.wsgi, REQUESTS_PER_WORKER)  # 503, never a database out of slots

    async def _serve(self):  # uvicorn-worker 0.4.0's, with the RecyclingServer above
        server = RecyclingServer(config=self.config)
        self.config.app = server.closing_app(self.wsgi)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


# Listen on all of the container's interfaces; compose publishes the port on the host's 127.0.0.1 only.
bind = "0.0.0.0:6868"
worker_class = DjangoUvicornWorker  # gunicorn takes the class itself (above)

# On SIGTERM, in-flight requests get 25 s to finish: below compose's stop_grace_period (30 s), so
# gunicorn exits by itself before Docker resorts to SIGKILL. Change both together.
graceful_timeout = 25
# timeout is NOT a request deadline under the Uvicorn worker: views run in threads while the event
# loop keeps touching the heartbeat file, so a slow request is never cut off (a 9 s view under
# timeout = 4 still answered 200). It catches a worker whose event loop is stuck this long, which
# gunicorn kills and replaces. Requests are bounded by PostgreSQL's statement_timeout
# (DB_STATEMENT_TIMEOUT) and, for the client, nginx's proxy_read_timeout.
timeout = 60
keepalive = 5  # seconds an idle keep-alive connection from nginx stays open

# Recycle each worker after ~10,000 requests; the jitter keeps them from restarting all at once.
# Bounds the damage of a slow memory leak in the app or a library. Not 1000: each recycle is a
# Django boot (~0.5 s of CPU), and on the pgbouncer path a worker serves ~100 req/s, so 1000 would
# recycle every worker every ~10 s (tests/bench/RESULTS.md); 10,000 makes it minutes and under 1% of CPU.
max_requests = 10000
max_requests_jitter = 1000

# Workers signal liveness by touching a file; on /dev/shm (memory) that never blocks on a slow disk,
# and it works with a read-only root filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (a heartbeat file, not data)

# No control socket (gunicorn >= 25.1 makes one under $HOME by default): nothing here uses it, and
# an unprivileged user may have no writable home.
control_socket_disable = True

accesslog = "-"  # access log to stdout, errors to stderr: Docker collects both
errorlog = "-"


def when_ready(server):
    """Once per start, in the master: what is running (version, git revision and build id from the
    image's build arguments, also its OCI labels), and the trial banner when no database is set."""
    build_id = os.environ.get("APP_BUILD_ID") or _content_hash()
    server.log.info(
        "sitekit %s (revision %s, build %s): %d workers on %s",
        os.environ.get("APP_VERSION", "dev"),
        os.environ.get("APP_REVISION") or "unknown",
        build_id,
        workers,
        bind,
    )
    if not os.environ.get("DB_NAME"):
        from app import trial

        trial.banner(os.environ.get("APP_PORT", "6868"))


def _content_hash():
    """The Dockerfile's .build-id (a hash of the app's files) when no BUILD_ID was given."""
    try:
        with open("/app/.build-id", encoding="ascii") as build_id:
            return "sha256:" + build_id.read(16)
    except OSError:
        return "unknown"

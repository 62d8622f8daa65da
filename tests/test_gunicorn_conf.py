"""docker/gunicorn.conf.py: its settings as gunicorn loads them, and its check mode, which the
entrypoint runs first because gunicorn parses WEB_CONCURRENCY on import (with a traceback)."""

import asyncio
import importlib.util
import re

import pytest

from tests.test_settings import REPO, VENV_BIN, assert_one_line_naming, production_env, run

CONF = REPO / "docker/gunicorn.conf.py"
# /proc/net/route inside a container on a compose network: the default route via 172.20.0.1.
ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010014AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000014AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def load(monkeypatch, **env):
    """The config module as gunicorn imports it (not as __main__), under these variables."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("__config__", CONF)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("value", ["three", "-1", "0"])
def test_the_check_refuses_a_bad_web_concurrency_with_one_line(value):
    result = run([VENV_BIN / "python", CONF], production_env(PYTHONPATH=str(REPO), WEB_CONCURRENCY=value))
    assert_one_line_naming(result, "WEB_CONCURRENCY")


def test_the_check_passes_the_production_example():
    result = run([VENV_BIN / "python", CONF], production_env(PYTHONPATH=str(REPO)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_forwarded_headers_are_trusted_from_the_default_gateway_unless_overridden(monkeypatch, tmp_path):
    routes = tmp_path / "route"
    routes.write_text(ROUTES)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    conf = load(monkeypatch)
    assert conf.default_gateway(routes) == "172.20.0.1"
    assert conf.default_gateway(tmp_path / "missing") is None
    assert conf.forwarded_allow_ips == (conf.default_gateway() or "127.0.0.1")  # this machine's route
    assert load(monkeypatch, FORWARDED_ALLOW_IPS="10.0.0.0/8").forwarded_allow_ips == "10.0.0.0/8"


def test_the_worker_class_is_uvicorns_with_lifespan_off(monkeypatch):
    worker = load(monkeypatch).worker_class
    assert worker.CONFIG_KWARGS["lifespan"] == "off"  # Django has no lifespan: no misleading log line
    assert "UvicornWorker" in [base.__name__ for base in worker.__mro__]


def test_in_flight_requests_get_less_time_than_docker_waits_before_sigkill(monkeypatch):
    compose = (REPO / "docker-compose.yml").read_text()
    grace = int(re.search(r"^\s+stop_grace_period: (\d+)s", compose, re.MULTILINE)[1])
    assert load(monkeypatch).graceful_timeout < grace


def test_each_worker_bounds_its_requests_in_progress_so_the_site_bounds_its_database_connections(monkeypatch):
    # WEB_CONCURRENCY x REQUESTS_PER_WORKER is the most connections the site asks PostgreSQL for
    # (CONN_MAX_AGE = 0), which the role's CONNECTION LIMIT in the VPS guide (40) must exceed.
    conf = load(monkeypatch, WEB_CONCURRENCY="3")
    assert conf.workers * conf.REQUESTS_PER_WORKER == 30
    assert "limit_concurrency" not in conf.worker_class.CONFIG_KWARGS  # it counts idle connections too


def test_requests_past_the_bound_are_answered_503_at_once_and_liveness_always(monkeypatch):
    conf = load(monkeypatch)
    release, started = asyncio.Event(), []

    async def app(scope, receive, send):  # a view waiting on the database
        started.append(scope["path"])
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(limited, path):
        sent = []

        async def send(message):
            sent.append(message)

        await limited({"type": "http", "path": path}, None, send)
        return sent[0]["status"], dict(sent[0]["headers"])

    async def scenario():
        limited = conf.RequestLimit(app, 2)
        slow = [asyncio.create_task(call(limited, "/slow")) for _ in range(2)]
        await asyncio.sleep(0)
        refused = await call(limited, "/")
        alive = await call(limited, "/healthz")
        release.set()
        served = [await task for task in slow]
        return refused, alive, served, await call(limited, "/")

    refused, alive, served, after = asyncio.run(scenario())
    assert refused[0] == 503 and refused[1][b"retry-after"] == b"5"
    assert "/" not in started[:3]  # refused before the app: no database connection asked for
    assert alive[0] == 200 and [status for status, _ in served] == [200, 200] and after[0] == 200

"""docker/gunicorn.conf.py: its settings as gunicorn loads them, and its check mode, which the
entrypoint runs first because gunicorn parses WEB_CONCURRENCY on import (with a traceback)."""

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

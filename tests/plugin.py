"""Test-session set-up that must happen before Django reads its settings (loaded with -p).

- Points the site at a real PostgreSQL: the server named by DB_* if one answers there, otherwise a
  throwaway cluster started here and removed at the end. SQLite is never substituted.
- Gives the test process the environment a production process has (SECRET_KEY, ALLOWED_HOSTS,
  a temporary STATIC_ROOT), so tests run the production settings path, not a test-only one.
- Drops make's variables inherited from `make test`, so the tests' own `make` runs are top-level.
- With CI=true a skipped test fails: CI must prove everything, not quietly leave parts out.
"""

import os
import secrets
import sys
import tempfile

import pytest

from tests.harness.pg import Cluster, reachable

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_cluster = None


def _use_postgresql():
    global _cluster
    host, port = os.environ.get("DB_HOST", "127.0.0.1"), int(os.environ.get("DB_PORT") or 5432)
    if os.environ.get("DB_NAME") and reachable(host, port):
        print(f"tests: using PostgreSQL at {host}:{port} (from DB_*)", file=sys.stderr)
        return
    _cluster = Cluster().start()
    os.environ.update(_cluster.env(host=str(_cluster.socket_dir)))
    print(f"tests: started a throwaway PostgreSQL cluster in {_cluster.root}", file=sys.stderr)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # A wrapper runs before pytest-django's own hook, which imports the settings.
    # Under `make test` the session inherits make's own variables; the tests run `make deploy` and
    # friends as a user does from a shell, not as sub-makes (which print "make[1]: ..." lines).
    for variable in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
        os.environ.pop(variable, None)
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="static-"))
    _use_postgresql()
    return (yield)


def pytest_unconfigure(config):
    if _cluster is not None:
        _cluster.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may skip: {reason}"
    return report

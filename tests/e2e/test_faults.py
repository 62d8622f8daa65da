"""Faults around the shipped container: the database away at start or under load, a failing
migration, an unwritable static folder. Each must end in a clear message or a clean recovery."""

import os
import time

import pytest

from tests.harness import host_database, wait_for
from tests.harness.http import request


@pytest.fixture(scope="module")
def own_cluster(docker):
    """A host PostgreSQL of this module's own, free to be stopped and restarted."""
    cluster = host_database()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_db(own_cluster):
    """This module's own PostgreSQL, running again after each test."""
    yield own_cluster
    if own_cluster.pg_ctl("status", check=False).returncode != 0:
        own_cluster.pg_ctl("start")


def test_database_down_at_start_then_up_within_the_bound(extra_stacks, own_db):
    app = extra_stacks("sitekit-fault", own_db, DB_WAIT_ATTEMPTS="60", DB_WAIT_SECONDS="1")
    own_db.pg_ctl("stop")
    app.compose("up", "-d")
    wait_for(lambda: "attempt 3/60" in app.logs(), what="three logged attempts")
    own_db.pg_ctl("start")
    wait_for(lambda: app.state()["Health"]["Status"] == "healthy", timeout=90, what="healthy")
    attempts = [line for line in app.logs().splitlines() if "is unreachable" in line]
    assert len(attempts) >= 3 and all("attempt " in line and "/60" in line for line in attempts)
    assert app.inspect("{{.RestartCount}}") == "0"  # no manual action, no restart needed


def test_a_stop_while_waiting_for_the_database_ends_at_once(extra_stacks, own_db):
    app = extra_stacks("sitekit-fault", own_db, DB_WAIT_ATTEMPTS="60", DB_WAIT_SECONDS="1")
    own_db.pg_ctl("stop")
    app.compose("up", "-d")
    wait_for(lambda: "attempt 2/60" in app.logs(), what="the entrypoint waiting for the database")
    app.compose("stop")  # SIGTERM, then SIGKILL after stop_grace_period (30 s)
    state = app.state()
    # 143: the entrypoint's trap ended it on SIGTERM; 137 would be Docker's SIGKILL after the grace period.
    assert state["ExitCode"] == 143, (state, app.logs())
    assert "stopped during preparation" in app.logs()


def test_database_down_past_the_bound_exits_and_the_policy_retries(extra_stacks, own_db):
    app = extra_stacks("sitekit-fault", own_db, DB_WAIT_ATTEMPTS="2", DB_WAIT_SECONDS="1")
    own_db.pg_ctl("stop")
    app.compose("up", "-d")
    wait_for(lambda: int(app.inspect("{{.RestartCount}}")) >= 1, timeout=60, what="a restart by the policy")
    logs = app.logs()
    assert "database still unreachable after 2 attempts; giving up" in logs
    assert "Traceback" not in logs
    own_db.pg_ctl("start")
    wait_for(
        lambda: app.state()["Health"]["Status"] == "healthy", timeout=120, what="healthy once the db is back"
    )


def get(app, path):
    """(status, body) straight from the container, as nginx asks it; a connection error is a status."""
    try:
        status, _, body = request(app.port, path, headers={"X-Forwarded-Proto": "https"}, timeout=10)
        return status, body
    except OSError as exc:
        return type(exc).__name__, ""


def test_database_restart_under_load_fails_cleanly_and_recovers(extra_stacks, own_db):
    app = extra_stacks("sitekit-fault", own_db)
    app.up()
    started_at = app.state()["StartedAt"]
    seen = {"before": [], "outage": [], "after": []}

    def load(phase, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for path in ("/", "/readyz"):
                seen[phase].append((path, *get(app, path)))
            time.sleep(0.05)

    load("before", 2)
    own_db.pg_ctl("stop")
    load("outage", 3)
    own_db.pg_ctl("start")
    load("after", 3)

    assert {status for _, status, _ in seen["before"]} == {200}
    outage = {(path, status) for path, status, _ in seen["outage"]}
    assert ("/readyz", 503) in outage and ("/", 503) in outage  # a page that says so, not a 500
    assert outage <= {("/", 503), ("/readyz", 503)}, outage  # every failure is an HTTP answer
    assert all("Traceback" not in body for _, _, body in seen["outage"])
    assert any('"database unreachable"' in body for path, _, body in seen["outage"] if path == "/readyz")
    assert {status for _, status, _ in seen["after"][-20:]} == {200}  # recovered by itself
    assert app.state()["StartedAt"] == started_at and app.inspect("{{.RestartCount}}") == "0"


BROKEN_MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("app", "{latest}")]
    operations = [
        migrations.AddField("site", "half_done", models.TextField(default="")),
        migrations.RunSQL("SELECT 1 / 0"),  # fails after the schema change above
    ]
"""


def test_a_failing_migration_changes_nothing_and_nothing_is_served(extra_stacks, own_db):
    own_db.psql('CREATE DATABASE "broken" OWNER sitekit', database="postgres")
    app = extra_stacks("sitekit-fault", own_db, own_image=True, DB_NAME="broken")
    latest = max(p.stem for p in (app.dir / "app/migrations").glob("0*.py"))
    (app.dir / "app/migrations/0999_broken.py").write_text(BROKEN_MIGRATION.format(latest=latest))
    app.compose("build")
    app.compose("up", "-d")
    wait_for(lambda: int(app.inspect("{{.RestartCount}}")) >= 1, timeout=90, what="the failed start")
    logs = app.logs()
    assert "division by zero" in logs
    columns = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'half_done'"
    assert own_db.psql(columns, database="broken") == "0"  # transactional DDL: rolled back whole
    applied = "SELECT count(*) FROM django_migrations WHERE name = '0999_broken'"
    assert own_db.psql(applied, database="broken") == "0"
    assert "Listening at" not in logs  # gunicorn never started on the half-migrated schema


@pytest.mark.parametrize("problem", ["missing", "root-owned"])
def test_unwritable_static_folder_gets_one_line_with_the_fix(extra_stacks, own_db, problem):
    app = extra_stacks("sitekit-fault", own_db)
    if problem == "missing":
        app.static.rmdir()  # Docker then creates the bind-mount source itself, as root
    else:
        os.chown(app.static, 0, 0)
    app.compose("up", "-d")
    wait_for(lambda: "not writable" in app.logs(), timeout=60, what="the static folder error")
    errors = [line for line in app.logs().splitlines() if "error:" in line]
    assert errors and all("sudo chown 33:33 ./static" in line for line in errors), errors
    assert "Traceback" not in app.logs()

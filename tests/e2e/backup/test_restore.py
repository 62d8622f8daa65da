"""Restores beyond the first: the drill (make restore-drill, a backup restored into a scratch
database and checked), and the way back from a deploy: deploys and `make up` back up before
migrations (a failing backup stops them), then rollback + restore bring back the state before."""

import contextlib
import re
from pathlib import Path

import pytest

from tests.e2e.backup.steps import add, make, one_line_error, served
from tests.harness import SESSION, envfile, run, wait_for
from tests.harness.deploy import deployed_site


def test_the_drill_passes_on_a_good_backup_and_fails_on_a_bad_one(site, db):
    assert make(site, "backup").returncode == 0
    drill = make(site, "restore-drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert re.fullmatch(
        r"drill: ok: \S+ restores; \d+ migrations as the code's; rows as dumped \(\d+ sites\)\n", drill.stdout
    ), drill.stdout
    # A backup recording a migration this code does not have (a newer version's).
    db.psql("INSERT INTO django_migrations (app, name, applied) VALUES ('app', '0999_future', now())")
    try:
        assert make(site, "backup").returncode == 0
    finally:
        db.psql("DELETE FROM django_migrations WHERE name = '0999_future'")
    bad = run(["scripts/restore.sh", "drill"], cwd=site.dir, check=False)  # what the timer runs
    assert bad.returncode == 1
    assert re.fullmatch(
        r"drill: error: \S+: migrations differ from the code's \(1 apart\)", one_line_error(bad)
    )
    assert db.psql("SELECT count(*) FROM pg_database WHERE datname = 'sitekit_drill'") == "0"  # scratch gone
    assert make(site, "backup").returncode == 0  # the newest is good again


MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("app", "{latest}")]
    operations = [migrations.AddField("site", "{column}", models.TextField(null=True))]
"""


@contextlib.contextmanager
def new_migration(app, column):
    """A migration adding `column`, in the site's clone while the block runs (a new version's)."""
    latest = max(p.stem for p in (app.dir / "app/migrations").glob("0*.py"))
    migration = app.dir / f"app/migrations/0999_{column}.py"
    migration.write_text(MIGRATION.format(latest=latest, column=column))
    try:
        yield
    finally:
        migration.unlink()


@pytest.fixture(scope="module")
def deployed(e2e_root, host_db):
    """A clone deployed as the VPS guide does it (revision v1 by make up), the database over TCP."""
    with deployed_site(e2e_root, host_db, "sitekit-bkdeploy", f"bkdeploy_{SESSION}") as app:
        app.backups = Path(envfile.parse((app.dir / ".env").read_text())["BACKUP_DIR"])
        yield app


def test_a_deploy_backs_up_before_migrations_and_a_failing_backup_stops_it(deployed):
    app = deployed
    revision = lambda: app.nginx.request("/")[1]["X-Revision"]  # noqa: E731
    columns = f"SELECT count(*) FROM information_schema.columns WHERE column_name = 'added_{SESSION}'"  # noqa: S608
    add(app, "Before Migration")
    # No migration to apply: no backup is needed, so an unwritable folder does not matter.
    plain = app.make("deploy", REVISION="v2", BACKUP_DIR="/proc/nowhere")
    assert plain.returncode == 0 and "back up" not in plain.stdout, plain.stdout + plain.stderr
    assert revision() == "v2"

    with new_migration(app, f"added_{SESSION}"):
        failed = app.make("deploy", REVISION="v3", BACKUP_DIR="/proc/nowhere")
        assert failed.returncode != 0
        assert one_line_error(failed) == (
            "deploy: error: the backup before v3's migrations failed: cannot create or write /proc/nowhere;"
            f" {app.name}:v2 still serves, untouched"
        )
        assert revision() == "v2" and app.cluster.psql(columns, database=app.database) == "0"

        deployed_v3 = app.make("deploy", REVISION="v3")
        assert deployed_v3.returncode == 0, deployed_v3.stdout + deployed_v3.stderr
        assert "--> back up the database: v3 has migrations it lacks" in deployed_v3.stdout
    [before] = app.backups.glob("*-v2-before-v3.dump")
    assert revision() == "v3" and app.cluster.psql(columns, database=app.database) == "1"
    add(app, "After Migration")

    # The way back (README, rollbacks): the code first, then the data from the backup before it.
    assert app.make("rollback").returncode == 0 and revision() == "v2"
    restored = app.make("restore", f"FILE={before.name}")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    body = wait_for(lambda: served(app), timeout=90, what="the site to serve again")
    assert "Before Migration" in body and "After Migration" not in body
    assert app.cluster.psql(columns, database=app.database) == "0"  # the schema before v3


def test_make_up_backs_up_before_migrations_too_and_a_failing_backup_stops_it(deployed):
    app = deployed
    revision = lambda: app.nginx.request("/")[1]["X-Revision"]  # noqa: E731
    before = revision()
    with new_migration(app, f"upped_{SESSION}"):
        failed = app.make("up", REVISION="v4", BACKUP_DIR="/proc/nowhere")
        assert failed.returncode != 0
        assert one_line_error(failed) == "backup: error: cannot create or write /proc/nowhere"
        assert revision() == before  # nothing was started: the old container serves on
        upped = app.make("up", REVISION="v4")
        assert upped.returncode == 0, upped.stdout + upped.stderr
    assert "make up: the new image has migrations the database lacks: a backup first" in upped.stdout
    assert len(list(app.backups.glob(f"*-{before}-before-v4.dump"))) == 1
    assert wait_for(lambda: revision() == "v4", timeout=60, what="v4 to serve")

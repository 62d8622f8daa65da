"""Upgrades and rollbacks (make deploy / make rollback, scripts/deploy.sh) on the real stack: the
project's compose file as the site's project and its temporary -next one, the project's nginx site
switched between them, a host PostgreSQL, and continuous load through nginx over HTTPS meanwhile."""

import fcntl
import re
import subprocess
import time

import pytest

from tests.harness import SESSION, run
from tests.harness.deploy import deployed_site
from tests.harness.traffic import Load


@pytest.fixture(scope="module")
def site(e2e_root, host_db):
    """A clone brought up by `make up` (revision v1) with the nginx site in front of it, and
    deploys pointed at that nginx (NGINX, NGINX_UPSTREAM) as they would be at /etc/nginx."""
    with deployed_site(e2e_root, host_db, "sitekit-deploy", f"deploy_{SESSION}") as app:
        yield app


def make(app, target, *args, **env):
    """`make <target>` in the clone, as its operator would run it (as root)."""
    return app.make(target, *args, **env)


def serving(app):
    """The revision that answers through nginx (the X-Revision header)."""
    return app.nginx.request("/")[1]["X-Revision"]


def edit(app, path, text):
    target = app.dir / path
    original = target.read_text() if target.exists() else None
    target.write_text(text if original is None else original + text)
    return lambda: target.write_text(original) if original is not None else target.unlink(missing_ok=True)


def test_deploy_then_rollback_under_load_drop_no_request_and_lose_no_write(site):
    assert serving(site) == "v1"
    # v2 changes a template and, as the README's policy allows, expands the schema: a nullable
    # column, which v1's code (after the rollback) neither knows nor has to fill in.
    restore = edit(site, "templates/base.html", "\n{# v2 #}\n")
    unexpand = add_migration(site, "expanded", fails=False, field="models.TextField(null=True)")
    try:
        with Load(site) as load:
            started = time.monotonic()
            deployed = make(site, "deploy", REVISION="v2")
        restore()
        unexpand()
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert load.failures() == [], deployed.stdout
        assert len(load.posted) >= 3 and load.rows() == len(load.posted)
        assert serving(site) == "v2" and column_exists(site, "expanded")
        print(deployed.stdout)
        print(f"deploy: new version serving {load.first_answer_from('v2') - started:.1f} s after make deploy")
        # Each step was printed with its duration.
        assert re.search(r"--> build .*\n\s+done in \d+\.\d s", deployed.stdout), deployed.stdout

        status = make(site, "status")
        print(status.stdout)
        name = site.name
        assert re.search(rf"^{name} +{name}:v2 revision v2 running \(healthy\)$", status.stdout, re.M), (
            status.stdout
        )
        assert f"{name}-next" not in status.stdout  # removed once the site's own project serves again
        assert re.search(rf"nginx +127\.0\.0\.1:{site.port} ", status.stdout), status.stdout
        assert re.search(rf"previous +{name}:v1 ", status.stdout), status.stdout  # make up's image, named
        # Plain compose (make manage, logs, shell) now runs what serves: <SITE>:latest is v2.
        assert revision_of(f"{name}:latest") == "v2"

        with Load(site) as load:
            started = time.monotonic()
            rolled_back = make(site, "rollback")
        assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
        assert load.failures() == [], rolled_back.stdout
        assert len(load.posted) >= 3 and load.rows() == len(load.posted)
        assert serving(site) == "v1"
        took = load.first_answer_from("v1") - started
        print(f"rollback: old version serving {took:.1f} s after make rollback")

        log = (site.dir / ".deploy/deploy.log").read_text().splitlines()
        assert [line.split("\t")[1:5] for line in log[-2:]] == [
            ["deploy", "v2", "root", "ok"],
            ["rollback", "v1", "root", "ok"],
        ]
        assert revision_of(f"{site.name}:latest") == "v1"
        # Any kept revision by name; one that is not kept gets one line naming those that are.
        named = make(site, "rollback", REV="v2")
        assert named.returncode == 0 and serving(site) == "v2", named.stdout + named.stderr
        missing = make(site, "rollback", REV="v0")
        assert missing.returncode != 0 and serving(site) == "v2"
        assert re.fullmatch(
            r"rollback: error: no image \S+:v0 on this host; kept: .*v2.*", one_line_error(missing)
        )
    finally:
        restore()
        unexpand()


def revision_of(image):
    template = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
    return run(["docker", "image", "inspect", "-f", template, image]).stdout.strip()


def one_line_error(result):
    """The last line of the tool's own (make's "*** Error" line aside): its one clear message."""
    return ([line for line in result.stderr.splitlines() if not line.startswith("make: ***")] or [""])[-1]


MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("app", "{latest}")]
    operations = [
        migrations.AddField("site", "{column}", {field}),
        {more}
    ]
"""


def add_migration(app, column, *, fails, field='models.TextField(default="")'):
    latest = max(p.stem for p in (app.dir / "app/migrations").glob("0*.py"))
    more = 'migrations.RunSQL("SELECT 1 / 0"),  # fails after the schema change above' if fails else ""
    text = MIGRATION.format(latest=latest, column=column, field=field, more=more)
    return edit(app, f"app/migrations/0999_{column}.py", text)


def column_exists(app, column):
    sql = f"SELECT count(*) FROM information_schema.columns WHERE column_name = '{column}'"  # noqa: S608
    return app.cluster.psql(sql, database=app.database) != "0"


def test_a_deploy_whose_migration_fails_stops_before_the_switch(site):
    before = serving(site)
    restore = add_migration(site, "half_done", fails=True)
    try:
        with Load(site) as load:
            result = make(site, "deploy", REVISION="broken")
    finally:
        restore()
    assert result.returncode != 0
    assert one_line_error(result).startswith("deploy: error: broken failed to prepare"), result.stderr
    assert "division by zero" in one_line_error(result) and "still serves, untouched" in one_line_error(
        result
    )
    assert load.failures() == []
    assert {answer[2] for answer in load.answers} == {before}, [a for a in load.answers if a[2] != before]
    assert not column_exists(site, "half_done")  # transactional DDL: nothing half-applied
    applied = "SELECT count(*) FROM django_migrations WHERE name = '0999_half_done'"
    assert site.cluster.psql(applied, database=site.database) == "0"
    assert serving(site) == before
    assert site.dir.joinpath(".deploy/deploy.log").read_text().splitlines()[-1].split("\t")[2:5] == [
        "broken",
        "root",
        "failed: prepare broken from its image: database, static files, migrations"
        " (nothing running is touched)",
    ]


def test_a_deploy_onto_a_full_static_disk_stops_before_the_switch(site):
    before = serving(site)
    page = site.nginx.request("/")[2]
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page)[1]
    # The static folder on a small disk holding the serving version's files, filled to the last byte.
    held = subprocess.run(["du", "-sk", site.static], capture_output=True, text=True).stdout.split()[0]
    copy = site.dir / "static-copy"
    run(["cp", "-a", f"{site.static}/.", copy])
    run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={int(held) + 64}k,mode=0755,uid=33,gid=33",
            "tmpfs",
            site.static,
        ]
    )
    undo = [lambda: run(["umount", site.static], check=False)]
    try:
        run(["cp", "-a", f"{copy}/.", site.static])
        subprocess.run(["dd", "if=/dev/zero", f"of={site.static}/filler", "bs=4k"], capture_output=True)
        undo.append(add_migration(site, "never_applied", fails=False))
        undo.append(edit(site, "app/static/site/css/site.css", "\n/* full disk */ body { margin: 0; }\n"))
        with Load(site) as load:
            result = make(site, "deploy", REVISION="fulldisk")
        assert result.returncode != 0
        line = one_line_error(result)
        assert line.startswith("deploy: error: fulldisk failed to prepare") and "untouched" in line, line
        assert "cannot publish static files to /app/static: No space left on device" in line, line
        assert load.failures() == [] and {answer[2] for answer in load.answers} == {before}
        assert site.nginx.request(stylesheet)[0] == 200  # the serving version's CSS is whole
        assert list(site.static.rglob(".*.tmp")) == []  # no partial file left behind
        assert not column_exists(site, "never_applied")  # publishing failed before any migration
        assert serving(site) == before
    finally:
        for step in reversed(undo):
            step()
        run(["rm", "-rf", copy])


def test_a_second_deploy_refuses_while_one_runs_and_a_deploy_without_root_refuses(site):
    (site.dir / ".deploy").mkdir(exist_ok=True)
    with open(site.dir / ".deploy/lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a deploy in progress holds it
        second = make(site, "deploy", REVISION="second")
    assert second.returncode != 0
    assert one_line_error(second).startswith("deploy: error: another deploy or rollback is running")

    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "scripts/deploy.sh", "deploy"]
    result = run(nobody, cwd=site.dir, env={**site.tools_env, "REVISION": "x"}, check=False)
    assert result.returncode != 0
    assert one_line_error(result) == (
        f"deploy: error: cannot write {site.nginx.upstream} (then reload nginx): "
        "run it as root, e.g. sudo make deploy"
    )


def test_a_deploy_refuses_when_nginx_does_not_read_the_upstream_file(site, tmp_path):
    # An nginx still on a site file with a fixed port would never leave the old container, which
    # the deploy would then replace: the deploy must notice before touching anything.
    before = serving(site)
    elsewhere = tmp_path / "sitekit-upstream.conf"
    result = make(site, "deploy", REVISION="unread", NGINX_UPSTREAM=str(elsewhere))
    assert result.returncode != 0
    assert one_line_error(result).startswith(f"deploy: error: nginx does not include {elsewhere}")
    assert serving(site) == before and not elsewhere.exists()

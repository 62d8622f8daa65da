"""Deploys that must stop before the switch, the old version serving on: a failing migration, a full
static disk, another deploy running, no root, an nginx not reading the upstream file, a release whose
home page fails, a database it cannot reach."""

import fcntl
import functools
import re
import subprocess

from tests.e2e.deploy.steps import add_migration, column_exists, edit, make, one_line_error, serving
from tests.harness import run
from tests.harness.envfile import with_changes
from tests.harness.traffic import Load


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


def test_a_release_whose_home_page_fails_is_refused_before_nginx_sends_it_anyone(site):
    before = serving(site)
    # /readyz answers 200 (no template); the home page raises NoReverseMatch: a 500.
    home = site.dir / "templates/home.html"
    original = home.read_text()
    home.write_text(original.replace("{% block content %}", "{% block content %}{% url 'no-such-page' %}", 1))
    restore = functools.partial(home.write_text, original)
    try:
        with Load(site) as load:
            result = make(site, "deploy", REVISION="badpage")
    finally:
        restore()
    assert result.returncode != 0, result.stdout + result.stderr
    assert one_line_error(result) == (
        "deploy: error: badpage did not take over: GET / (Host localhost, https) answered 500; "
        f"{site.name}:{before} still serves"
    ), result.stdout + result.stderr
    assert load.failures() == [] and {answer[2] for answer in load.answers} == {before}
    assert serving(site) == before
    assert site.dir.joinpath(".deploy/deploy.log").read_text().splitlines()[-1].split("\t")[2:5] == [
        "badpage",
        "root",
        f"failed: ask {site.name}-next for / /submit/ /admin/login/ as nginx would (any 5xx refuses it)",
    ]


def test_a_prepare_that_cannot_reach_the_database_says_only_what_is_true(site):
    before = serving(site)
    env = site.dir / ".env"
    original = env.read_text()
    unreachable = {"DB_PORT": "1", "DB_WAIT_ATTEMPTS": "2", "DB_WAIT_SECONDS": "0"}  # nothing listens on 1
    env.write_text(with_changes(original, unreachable))
    try:
        result = make(site, "deploy", REVISION="nodb")
    finally:
        env.write_text(original)
    assert result.returncode != 0
    # Nothing retries a deploy's prepare: no "the restart policy will try again" anywhere.
    assert "restart policy" not in result.stdout + result.stderr
    assert one_line_error(result) == (
        "deploy: error: nodb failed to prepare: database still unreachable after 2 attempts; giving up; "
        f"{site.name}:{before} still serves, untouched"
    )
    assert serving(site) == before

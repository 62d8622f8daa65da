"""Upgrades and rollbacks (make deploy / make rollback, scripts/deploy.sh) on the real stack: the
project's compose file as the site's project and its temporary -next one, the project's nginx site
switched between them, a host PostgreSQL, and continuous load through nginx over HTTPS meanwhile."""

import re
import time

from tests.e2e.deploy.steps import (
    add_migration,
    column_exists,
    edit,
    make,
    one_line_error,
    revision_of,
    serving,
)
from tests.harness.envfile import parse, with_changes
from tests.harness.traffic import Load


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
        assert re.search(rf"rollback to +{name}:v1 ", status.stdout), status.stdout  # make up's image, named
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

        assert "rolling back from v2 to v1, deployed before it" in rolled_back.stdout
        log = (site.dir / ".deploy/deploy.log").read_text().splitlines()
        assert [line.split("\t")[1:5] for line in log[-2:]] == [
            ["deploy", "v2", "root", "ok"],
            ["rollback", "v1", "root", "ok"],
        ]
        assert revision_of(f"{site.name}:latest") == "v1"
        # A second rollback goes further back, never forward to the version just rolled away from.
        again = make(site, "rollback")
        assert again.returncode != 0 and serving(site) == "v1", again.stdout + again.stderr
        assert one_line_error(again) == (
            "rollback: error: no revision deployed before v1 in .deploy/deploy.log: "
            "name one, make rollback REV=<revision>"
        )
        # Any kept revision by name; one that is not kept gets one line naming those that are.
        named = make(site, "rollback", REV="v2")
        assert named.returncode == 0 and serving(site) == "v2", named.stdout + named.stderr
        missing = make(site, "rollback", REV="v0")
        assert missing.returncode != 0 and serving(site) == "v2"
        assert re.fullmatch(
            r"rollback: error: no image \S+:v0 on this host; kept: .*v2.*", one_line_error(missing)
        )
        back = make(site, "rollback")  # from v2, rolled forward to by name, back to v1 again
        assert back.returncode == 0 and serving(site) == "v1", back.stdout + back.stderr
        assert "rolling back from v2 to v1" in back.stdout
    finally:
        restore()
        unexpand()


def test_an_edited_env_reaches_production_by_make_deploy_under_load(site):
    # A fix to ALLOWED_HOSTS, with no new code: the revision that serves, deployed again.
    revision, other = serving(site), "www.localhost"  # nginx's site serves www. too (nginx/site.conf)
    assert site.nginx.request("/", host=other)[0] == 400  # Django refuses the name so far
    env = site.dir / ".env"
    original = env.read_text()
    hosts = parse(original)["ALLOWED_HOSTS"]
    env.write_text(with_changes(original, {"ALLOWED_HOSTS": f"{hosts},{other}"}))
    try:
        with Load(site) as load:
            deployed = make(site, "deploy", REVISION=revision)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert f"{revision} serves, but not with this configuration" in deployed.stdout
        assert load.failures() == [], deployed.stdout
        assert len(load.posted) >= 3 and load.rows() == len(load.posted)
        assert site.nginx.request("/", host=other)[0] == 200 and serving(site) == revision
        unchanged = make(site, "deploy", REVISION=revision)
        assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
        assert f"{revision} already serves with this configuration: nothing to do" in unchanged.stdout
        # The log says so: the same revision, from itself, with another configuration's hash.
        log = site.dir.joinpath(".deploy/deploy.log").read_text().splitlines()
        *earlier, switched, last = [line.split("\t") for line in log]
        assert switched[1:5] + switched[6:7] == ["deploy", revision, "root", "ok", revision]
        before = [line for line in earlier if line[4] == "ok"][-1]  # the last switch: the old configuration
        assert switched[7] != before[7] and last[4] == "unchanged"
    finally:
        env.write_text(original)

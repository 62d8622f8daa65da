"""Deploys of the image CI built and pushed (make deploy IMAGE=<repo>@sha256:...), with a local
registry standing in for GHCR: pulled by digest, never built on the server, switched to under load
as a build is; a tag resolved to its digest and recorded as one; a rollback to the previous digest,
pulled again once gone; a reference that cannot be pulled refused with one line, nothing touched.
After test_deploy.py and test_refusals.py (file order): their messages name a build by its SITE tag."""

import re
import subprocess

from tests.e2e.deploy.steps import make, one_line_error, serving
from tests.harness import REPO, SESSION, record_build, run
from tests.harness.traffic import Load

IMAGE_SH = str(REPO / "scripts/image.sh")


def published(app, registry, revision, version):
    """The clone's image built as CI builds it (REVISION, VERSION) and pushed; no local copy kept."""
    name = f"{registry}/owner/sitekit-{SESSION}:{revision}"
    env = {**app.tools_env, "APP_IMAGE": name, "REVISION": revision, "VERSION": version}
    run(["docker", "compose", "-p", app.name, "build", "app"], cwd=app.dir, env=env)
    run(["docker", "push", name])
    digest = run(["docker", "image", "inspect", "-f", "{{index .RepoDigests 0}}", name]).stdout.strip()
    run(["docker", "image", "rm", name])  # the host has only what the registry serves
    assert not present(digest)
    return name, digest


def present(image):
    return run(["docker", "image", "inspect", image], check=False).returncode == 0


def last_log_line(app):
    return (app.dir / ".deploy/deploy.log").read_text().splitlines()[-1].split("\t")[1:5]


def assert_serves(app, digest, revision, version):
    """What serves, as the operator sees it: X-Revision through nginx, make status, the deploy log."""
    assert serving(app) == revision
    status = make(app, "status").stdout
    line = rf"^{app.name} +{re.escape(digest)} revision {revision} version {version} running \(healthy\)$"
    assert re.search(line, status, re.M), status
    return status


def test_a_deploy_by_digest_pulls_what_ci_pushed_and_a_rollback_returns_to_the_previous_digest(
    site, registry
):
    first, first_digest = published(site, registry, "ci-1", "1.0.0")
    second, second_digest = published(site, registry, "ci-2", "1.1.0")
    try:
        with Load(site) as load:
            deployed = make(site, "deploy", f"IMAGE={first_digest}")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert load.failures() == [], deployed.stdout
        assert len(load.posted) >= 3 and load.rows() == len(load.posted)
        print(deployed.stdout)
        assert f"--> pull {first_digest}\n    {first_digest}, revision ci-1\n" in deployed.stdout
        assert "--> build" not in deployed.stdout  # pulled, not built here
        assert_serves(site, first_digest, "ci-1", "1.0.0")
        assert last_log_line(site) == ["deploy", first_digest, "root", "ok"]

        # By tag: resolved to the digest it names now, and recorded as that digest. KEEP_IMAGES=1:
        # the previous deploy's image stays all the same, as the rollback target.
        with Load(site) as load:
            deployed = make(site, "deploy", f"IMAGE={second}", KEEP_IMAGES="1")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert load.failures() == [] and load.rows() == len(load.posted) >= 3, deployed.stdout
        status = assert_serves(site, second_digest, "ci-2", "1.1.0")
        assert re.search(rf"^rollback to +{re.escape(first_digest)} ", status, re.M), status
        assert last_log_line(site) == ["deploy", second_digest, "root", "ok"]
        tags = run(["docker", "image", "ls", site.name, "--format", "{{.Tag}}"]).stdout.split()
        kept = {"latest", *(f"sha256-{digest.split(':')[-1]}" for digest in (first_digest, second_digest))}
        assert set(tags) == kept and present(first_digest)  # all else pruned: builds and pulls alike
        assert not present(second)  # no tag left behind: pulled by its digest

        # Pruned by hand meanwhile (docker image prune -a, say): the rollback pulls it again.
        run(["docker", "image", "rm", first_digest, f"{site.name}:sha256-{first_digest.split(':')[-1]}"])
        with Load(site) as load:
            rolled_back = make(site, "rollback")
        assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
        assert load.failures() == [] and load.rows() == len(load.posted) >= 3, rolled_back.stdout
        assert (
            f"rolling back from {second_digest} to {first_digest}, deployed before it" in rolled_back.stdout
        )
        assert f"--> pull {first_digest}\n" in rolled_back.stdout
        assert_serves(site, first_digest, "ci-1", "1.0.0")
        assert last_log_line(site) == ["rollback", first_digest, "root", "ok"]
    finally:
        for image in (first_digest, second_digest):
            record_build(image)  # removed at the session's end, once no container runs it


def test_an_image_that_cannot_be_pulled_is_refused_with_one_line_and_nothing_touched(site, registry):
    repo, zeros = f"{registry}/owner/sitekit-{SESSION}", "0" * 64
    watched = [site.dir / ".env", site.dir / ".deploy/deploy.log", site.nginx.upstream]
    before = [path.read_bytes() if path.exists() else None for path in watched]
    container, revision = site.container(), serving(site)
    refusals = {
        f"{repo}@sha256:{zeros}": f"cannot pull {repo}@sha256:{zeros}: not found: manifest unknown",
        f"{repo}:no-such-tag": f"cannot find {repo}:no-such-tag: not found",
        f"localhost:1/owner/sitekit@sha256:{zeros}": "connect: connection refused",
        f"{repo}@sha256:{zeros[:12]}": f"'{repo}@sha256:{zeros[:12]}' is not an image reference",
    }
    for image, says in refusals.items():
        result = make(site, "deploy", f"IMAGE={image}")
        assert result.returncode != 0, result.stdout
        line = one_line_error(result)
        assert line.startswith("deploy: error: ") and says in line, line
        assert [out for out in result.stderr.splitlines() if not out.startswith("make: ***")] == [line]
        assert [path.read_bytes() if path.exists() else None for path in watched] == before
        assert site.container() == container and serving(site) == revision


def test_image_sh_prunes_a_pulled_image_whole_and_keeps_what_it_is_told(registry, tmp_path):
    """Without a stack: two tiny images pushed, pulled for a site (one by tag), one pruned."""
    repo, site = f"{registry}/owner/tiny-{SESSION}", f"tiny-{SESSION}"
    digests = []
    for number in ("1", "2"):
        (tmp_path / "file").write_text(number)
        run(["tar", "-cf", tmp_path / "layer.tar", "-C", tmp_path, "file"])
        run(["docker", "import", tmp_path / "layer.tar", f"{repo}:{number}"])
        run(["docker", "push", f"{repo}:{number}"])
        digests.append(
            run(
                ["docker", "image", "inspect", "-f", "{{index .RepoDigests 0}}", f"{repo}:{number}"]
            ).stdout.strip()
        )
        run(["docker", "image", "rm", f"{repo}:{number}"])
    try:
        pulled = [image_sh("pull", digests[0], site), image_sh("pull", f"{repo}:2", site)]
        assert [result.stdout.strip() for result in pulled] == digests
        assert not present(f"{repo}:2")  # a tag is resolved, then pulled by digest: no tag stays
        ids = [
            run(["docker", "image", "inspect", "-f", "{{.Id}}", digest]).stdout.strip() for digest in digests
        ]
        image_sh("prune", site, digests[0])
        assert present(digests[0]) and present(f"{site}:sha256-{digests[0].split(':')[-1]}")
        assert not present(ids[1])  # the other went whole: its tag and its digest reference
    finally:
        listed = (
            run(["docker", "image", "ls", "-q", site]).stdout.split()
            + run(["docker", "image", "ls", "-q", repo]).stdout.split()
        )
        run(["docker", "image", "rm", "--force", *set(listed)], check=False)


def image_sh(*args):
    result = subprocess.run([IMAGE_SH, *args], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result

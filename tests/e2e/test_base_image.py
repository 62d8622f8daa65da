"""Builds refresh the base image, so the OS's security fixes reach the site (docker-compose.yml's
build.pull), and still work with a base that only this machine has (the offline image): `make`
pulls only a base that has a registry digest (Makefile, BUILD_PULL).

A local registry (Debian's docker-registry) stands in for Docker Hub; the "base images" are the
session's base with a version file added."""

import os

from tests.harness import BASE_IMAGE, SESSION, Stack, record_build, run

VERSION_FILE = "/etc/sitekit-base-version"


def base_image(tag, version):
    """An image FROM the session's base with VERSION_FILE holding `version`; its id."""
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo {version} > {VERSION_FILE}\n"
    run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile)
    record_build(tag)
    return run(["docker", "image", "inspect", "-f", "{{.Id}}", tag]).stdout.strip()


def digests(image):
    return run(["docker", "image", "inspect", "-f", "{{json .RepoDigests}}", image]).stdout.strip()


def site_copy(root, name, base):
    """A copy of the project whose .env names `base` and leaves BUILD_PULL to make."""
    app = Stack(root, name, own_image=True)
    app.write_env({"PYTHON_IMAGE": base, "BUILD_PULL": None})
    return app


def build(app, *argv):
    """A build in the copy as its operator runs it: the environment holds nothing of this session's
    (make test exports BUILD_PULL and CI PYTHON_IMAGE, which would outrank the copy's .env)."""
    env = {key: value for key, value in os.environ.items() if key not in ("BUILD_PULL", "PYTHON_IMAGE")}
    env["COMPOSE"] = f"docker compose -p {app.name}"
    result = run(argv, cwd=app.dir, env=env, check=False, timeout=900)
    record_build(app.image)
    return result


def version_in(image):
    return run(["docker", "run", "--rm", "--entrypoint", "cat", image, VERSION_FILE]).stdout.strip()


def test_a_build_picks_up_the_newer_base_image_from_its_registry(registry, e2e_root):
    name = f"{registry}/sitekit-python:{SESSION}"
    old = base_image(name, "1")
    run(["docker", "push", name])
    new = base_image(name, "2")  # the registry gets a newer base (an OS security fix, say) ...
    run(["docker", "push", name])
    run(["docker", "tag", old, name])  # ... while this machine still has the old one under the name
    try:
        assert digests(name) != "[]"  # the old one came from the registry too
        app = site_copy(e2e_root, "pull", name)
        result = build(app, "make", "build")
        assert result.returncode == 0, result.stdout + result.stderr
        assert version_in(app.image) == "2"  # built on the registry's newer base, not the local one
    finally:
        run(["docker", "image", "rm", "--force", name, old, new], check=False)


def test_a_base_only_this_machine_has_is_built_on_without_a_pull(e2e_root):
    local = f"sitekit-local-base-{SESSION}:latest"
    image = base_image(local, "local")
    try:
        assert digests(local) == "[]"  # built here: no registry has it
        app = site_copy(e2e_root, "nopull", local)
        # Compose alone pulls (the default), and fails: no registry has this image.
        refused = build(app, "docker", "compose", "-p", app.name, "build", "app")
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, output
        assert f"sitekit-local-base-{SESSION}" in output, output  # the pull of the base failed
        # make sees the base is local-only and builds on it as it is.
        result = build(app, "make", "build")
        assert result.returncode == 0, result.stdout + result.stderr
        assert version_in(app.image) == "local"
    finally:
        run(["docker", "image", "rm", "--force", local, image], check=False)

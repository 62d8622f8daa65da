"""Fixtures for the end-to-end tests: a Docker engine, a host PostgreSQL the containers can reach,
the image built once, and the stack (compose + the host nginx site) up for the session. The
machinery is tests/harness/; this file only decides lifetimes."""

import functools
import shutil
import subprocess

import pytest

from tests.harness import BASE_IMAGE, Nginx, Stack, cleanup, host_database, run, site_env, workdir
from tests.harness.registry import local_registry


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker():
    """Skips (fails under CI=true) when there is no Docker engine or Compose v2 to drive.
    Afterwards, removes the images this session built (other sessions' stay)."""
    for argv in (["docker", "info"], ["docker", "compose", "version"], ["nginx", "-v"]):
        if not shutil.which(argv[0]) or subprocess.run(argv, capture_output=True).returncode != 0:
            pytest.skip(
                f"`{' '.join(argv)}` failed: run .ci/provision to install the Docker engine and nginx"
            )
    yield
    cleanup()


@pytest.fixture
def registry(docker, tmp_path):
    """A local image registry (stands in for Docker Hub or GHCR); its address, `localhost:PORT`."""
    with local_registry(tmp_path) as address:
        if address is None:
            pytest.skip("docker-registry is not installed: run .ci/provision")
        yield address


@pytest.fixture(scope="session")
def e2e_root(docker):
    root = workdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def host_db(docker):
    """PostgreSQL on the host as on a VPS, shared by the session (tests/harness/stack.py)."""
    cluster = host_database()
    yield cluster
    cluster.stop()


def announce(config, line):
    """Print a line to the test log as it happens, past pytest's output capture."""
    plugins = config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        plugins.get_plugin("terminalreporter").write_line(line)


@pytest.fixture(scope="session")
def stack(e2e_root, host_db, request):
    """The shipped stack, up and healthy, with nginx in front: shared by the read-only tests."""
    say = functools.partial(announce, request.config)
    app = Stack(e2e_root, "sitekit-e2e")
    nginx = Nginx(e2e_root, app)
    app.write_env(site_env(host_db, nginx.https_port))
    app.compose("build")
    size = run(["docker", "image", "inspect", "-f", "{{.Size}}", app.image]).stdout.strip()
    say(f"e2e: built {app.image} ({int(size) // 2**20} MB) from the Dockerfile on {BASE_IMAGE}")
    try:
        app.up()
    except AssertionError:
        print(app.logs())
        raise
    nginx.start()
    say(
        f"e2e: stack {app.name} up and healthy on 127.0.0.1:{app.port} ({app.subnet}); "
        f"host nginx on https://127.0.0.1:{nginx.https_port}"
    )
    app.nginx = nginx
    yield app
    print(app.logs()[-5000:])
    nginx.stop()
    app.down()


@pytest.fixture
def extra_stacks(e2e_root, stack, request):
    """make(name, cluster, *, own_image=False, **env): the one factory of stacks beyond the
    session's, each in a folder of the test's own (so a name may repeat across tests), on the
    session's image unless own_image; all torn down (with any nginx in front of them) after the test."""
    made, root = [], e2e_root / request.node.name

    def make(name, cluster, *, own_image=False, **env):
        root.mkdir(exist_ok=True)
        root.chmod(0o755)  # nginx's workers traverse it to a stack's static folder
        app = Stack(root, name, image=stack.image, own_image=own_image)
        app.write_env(site_env(cluster, 443, **env))
        made.append(app)
        return app

    yield make
    for app in made:
        if getattr(app, "nginx", None):
            app.nginx.stop()
        app.down()

"""Fixtures for the end-to-end tests: a Docker engine, a host PostgreSQL the containers can reach,
the image built once, and the stack (compose + the host nginx site) up for the session."""

import functools
import secrets
import shutil
import subprocess

import pytest

from tests.e2e.stack import BASE_IMAGE, SUBNETS, Nginx, Stack, docker_gateway, run, workdir
from tests.pgcluster import Cluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker():
    """Skips (fails under CI=true) when there is no Docker engine or Compose v2 to drive.
    Afterwards, removes the images the tests built (tagged sitekit-*, and those they untagged);
    the build cache stays, so the next run rebuilds in seconds."""
    for argv in (["docker", "info"], ["docker", "compose", "version"], ["nginx", "-v"]):
        if not shutil.which(argv[0]) or subprocess.run(argv, capture_output=True).returncode != 0:
            pytest.skip(
                f"`{' '.join(argv)}` failed: run .ci/provision to install the Docker engine and nginx"
            )
    yield
    ours = "label=org.opencontainers.image.title=sitekit"
    listed = run(
        ["docker", "images", "--filter", ours, "--format", "{{.Repository}}:{{.Tag}}"]
    ).stdout.split()
    built_here = [image for image in listed if image.startswith("sitekit-")]
    if built_here:
        run(["docker", "image", "rm", "--force", *built_here], check=False)
    run(["docker", "image", "prune", "--force", "--filter", ours], check=False)


@pytest.fixture(scope="session")
def e2e_root(docker):
    root = workdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def host_db(docker):
    """PostgreSQL on the host as on a VPS: listening on the docker0 address (where
    host.docker.internal points), with pg_hba allowing the compose subnets."""
    cluster = Cluster(listen=("127.0.0.1", docker_gateway()), hba_networks=(SUBNETS,)).start()
    yield cluster
    cluster.stop()


def site_env(cluster, https_port, **extra):
    """The production example environment, pointed at this machine's database and ports."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "localhost",
        "CSRF_TRUSTED_ORIGINS": f"https://localhost:{https_port}",
        **cluster.env(host="host.docker.internal"),
        **extra,
    }


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
        f"e2e: stack up and healthy on 127.0.0.1:{app.port}; host nginx on https://127.0.0.1:{nginx.https_port}"
    )
    app.nginx = nginx
    yield app
    print(app.logs()[-5000:])
    nginx.stop()
    app.down()


@pytest.fixture
def extra_stacks(e2e_root, stack):
    """Stacks beyond the session's, each on its own subnet, on the session's image unless told
    otherwise; all torn down (with any nginx in front of them) after the test."""
    made = []

    def make(name, subnet_index, cluster, *, image=stack.image, root=e2e_root, **env):
        app = Stack(root, name, subnet_index=subnet_index, image=image)
        app.write_env(site_env(cluster, 443, **env))
        made.append(app)
        return app

    yield make
    for app in made:
        if getattr(app, "nginx", None):
            app.nginx.stop()
        app.down()


def manage(stack, *args):
    """python manage.py ... inside the running container (as the container's own user)."""
    return run(["docker", "exec", stack.container(), "python", "manage.py", *args])

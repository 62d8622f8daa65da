"""The site on a real three-node Docker Swarm (swarm/, docs/scale-out.md): nodes are containers
running Debian's dockerd (tests/harness/swarm.py), the database is this host's PostgreSQL over TCP +
SCRAM, images come from a registry by digest, and visitors reach the nodes' nginx sites in turn.
The tests run in this order on one swarm; the last one kills a node."""

import time

import pytest

from tests.harness import run
from tests.harness.swarm import APP_PORT, Swarm, reaches, release, status_through
from tests.harness.traffic import Load

# A release that starts and serves, but whose health check never passes (it asks a missing page).
NEVER_HEALTHY = """HEALTHCHECK --interval=2s --timeout=2s --start-period=4s --retries=2 CMD ["python", "-c", \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6868/nowhere', timeout=1)"]"""


@pytest.fixture(scope="module")
def swarm(stack, e2e_root, request):
    started = time.monotonic()
    with Swarm(e2e_root) as cluster:
        cluster.images = {name: release(stack.image, name) for name in ("swarm-a", "swarm-b")}
        cluster.images["bad"] = release(stack.image, "swarm-bad", NEVER_HEALTHY)
        cluster.releases = {name: cluster.publish(image) for name, image in cluster.images.items()}
        cluster.write_env()
        try:
            cluster.deploy(cluster.releases["swarm-a"])
        except AssertionError:
            print(cluster.nodes[0].docker("service", "ps", "--no-trunc", "sitekit_app", check=False).stdout)
            raise
        print(f"swarm: 3 nodes up and swarm-a deployed in {time.monotonic() - started:.0f} s")
        yield cluster


def revisions(cluster):
    """X-Revision through each node's nginx."""
    return [nginx.request("/")[1].get("X-Revision") for nginx in cluster.nginx]


def test_every_node_serves_the_release_with_the_hardening_swarm_honours(swarm):
    assert revisions(swarm) == ["swarm-a"] * 3
    assert set(swarm.serving().values()) == {swarm.releases["swarm-a"]}
    node = swarm.nodes[1]
    task = "label=com.docker.swarm.service.name=sitekit_app"
    [container] = node.docker("ps", "-q", "--filter", task).stdout.split()
    config = node.docker("inspect", "-f", "{{json .HostConfig.ReadonlyRootfs}} {{json .HostConfig.CapDrop}} "
                         "{{json .HostConfig.Init}} {{.HostConfig.Memory}} {{.Config.User}}",
                         container).stdout.split()  # fmt: skip
    assert config == ["true", '["ALL"]', "true", str(512 * 2**20), "33:33"]
    env = node.docker("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", container).stdout
    assert "SECRET_KEY_FILE=/run/secrets/secret_key" in env.splitlines()
    assert not [line for line in env.splitlines() if line.startswith(("SECRET_KEY=", "DB_PASSWORD="))]


def test_deploy_refuses_a_tag_in_one_line(swarm):
    result = swarm.deploy("sitekit:latest", check=False)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "swarm-deploy: error: IMAGE must name the image by digest (registry/name@sha256:...),"
        " not 'sitekit:latest'"
    )


def test_app_port_admits_the_private_network_alone(swarm):
    node = swarm.nodes[1]
    assert reaches(node.public, APP_PORT, swarm.public_gateway), "the port is open to the public side"
    script = (swarm.nodes[0].site.dir / "swarm" / "firewall.sh").read_text()
    for each in swarm.nodes:
        each.sh(script, swarm.private_subnet, str(APP_PORT))
    node.sh(script, swarm.private_subnet, str(APP_PORT))  # run again: still one rule
    rules = node.sh("iptables -S DOCKER-USER").stdout
    assert rules.count("--ctorigdstport 6868") == 1, rules
    assert not reaches(node.public, APP_PORT, swarm.public_gateway), "a public client reached the app port"
    assert reaches(node.private, APP_PORT, swarm.gateway), "the private network lost the app port"
    assert [status_through(nginx) for nginx in swarm.nginx] == [200] * 3


def test_rolling_update_of_every_node_drops_nothing(swarm):
    with Load(Target(swarm), writers=2) as load:
        started = time.monotonic()
        swarm.deploy(swarm.releases["swarm-b"])
        took = time.monotonic() - started
    print(f"swarm: rolling update of 3 nodes in {took:.0f} s, {len(load.answers)} requests, "
          f"{len(load.posted)} posts, {load.retries()} idle-connection retries")  # fmt: skip
    assert load.failures() == []
    assert load.rows() == len(load.posted) > 0
    assert set(swarm.serving().values()) == {swarm.releases["swarm-b"]}
    assert revisions(swarm) == ["swarm-b"] * 3
    # Every node's own folder holds every static file the release ships, byte for byte.
    image = swarm.images["swarm-b"]
    shipped = run(["docker", "run", "--rm", "--entrypoint", "cat", image, "/app/static.sha256"])
    for node in swarm.nodes:
        run(["sha256sum", "--quiet", "-c", "-"], cwd=node.site.static, input=shipped.stdout)


def test_release_that_never_gets_healthy_rolls_back_by_itself(swarm):
    with Load(Target(swarm)) as load:
        result = swarm.deploy(swarm.releases["bad"], check=False)
    assert result.returncode != 0
    assert "did not become healthy: Swarm rollback_completed" in result.stderr, result.stderr
    assert load.failures() == []
    assert load.rows() == len(load.posted) > 0
    assert set(swarm.serving().values()) == {swarm.releases["swarm-b"]}
    assert revisions(swarm) == ["swarm-b"] * 3
    # Deploying what serves changes nothing, and is no failure (the rollback is a past update's).
    assert "serves on all 3 nodes" in swarm.deploy(swarm.releases["swarm-b"]).stdout


def test_node_killed_under_load_costs_only_its_requests_in_flight(swarm):
    victim = swarm.nodes[2]
    with Load(Target(swarm)) as load:
        time.sleep(2)
        killed = time.monotonic()
        run(["docker", "kill", victim.name])
        time.sleep(8)
    failed = load.failures()
    # In flight at the kill: at most one request per visitor thread of the load.
    print(f"swarm: node killed under load: {len(failed)} of {len(load.answers)} requests failed "
          f"({[answer[:2] for answer in failed]}); {len(load.posted)} posts stored")  # fmt: skip
    assert len(failed) <= len(load.threads)
    assert all(at > killed for *_, at in failed)
    # Every post answered is stored; the one writer's post in flight may or may not be.
    assert len(load.posted) <= load.rows() <= len(load.posted) + 1
    assert [status_through(nginx) for nginx in swarm.nginx] == [200] * 3  # its nginx falls back too


class Target:
    """What traffic.Load sends visitors to: the nodes' nginx sites in turn, and the database."""

    def __init__(self, swarm):
        self.nginx, self.cluster, self.database = swarm.front, swarm.cluster, swarm.database

"""A real Docker Swarm of several nodes on this machine: each node a container running Debian's
dockerd (no --privileged: the capabilities below), on a private network (the nodes, and this host
as the database's and the registry's machine) and a public one (the outside, for the firewall).
Images reach the nodes through a registry on the private network; PostgreSQL listens there (TCP +
SCRAM, the remote-database path). Each node has a clone of the project (its static and data
folders) and an nginx site of its own (swarm-upstream: its task first, the other nodes as backups),
run on this host on loopback ports so the tests' visitors keep their own addresses; `front` spreads
them over the nodes' nginx in turn. No routing mesh here (no IPVS): the stack needs none."""

import contextlib
import hashlib
import itertools
import os
import socket
import tempfile
from pathlib import Path

from tests.harness import http
from tests.harness.nginx import Nginx
from tests.harness.pg import Cluster
from tests.harness.stack import SESSION, Stack, record_build, run, site_env, tag, wait_for

SUITE, PACKAGES = "bookworm", "docker.io,iptables,ca-certificates,iproute2"
APP_PORT = 6868  # the same on every node: each node's task publishes it on the node's own addresses
SITE_DIR = "/srv/site"  # the clone's path on every node (the stack's bind mounts name it)
# What dockerd in a container needs here (--privileged is refused: no CAP_SYS_RESOURCE to give).
CAPS = "SYS_ADMIN NET_ADMIN NET_RAW SYS_PTRACE MKNOD SYS_CHROOT SETFCAP SYS_MODULE DAC_READ_SEARCH"
CAPS += " LINUX_IMMUTABLE IPC_LOCK SYS_NICE"
OPTS = ["seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"]


def node_image():
    """The nodes' image, built once per package list (mmdebstrap + docker import) and kept by that
    key: later runs start in seconds."""
    key = hashlib.sha256(f"{SUITE} {PACKAGES}".encode()).hexdigest()[:12]
    image = f"sitekit-swarm-node:{key}"
    if run(["docker", "image", "inspect", image], check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as scratch:
            tar = f"{scratch}/node.tar"
            run(["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, tar], timeout=900)
            run(["docker", "import", "-c", 'CMD ["dockerd"]', tar, image])
    return image


def release(base, revision, extra=""):
    """An image of base that says `revision` in X-Revision (and any extra Dockerfile lines)."""
    image = tag(f"swarm-{revision}")
    dockerfile = f"FROM {base}\nENV APP_REVISION={revision}\n{extra}\n"
    run(["docker", "build", "-q", "-t", image, "-"], input=dockerfile)
    record_build(image)
    return image


class Node:
    def __init__(self, swarm, index):
        self.name = f"{swarm.name}-n{index}"
        self.root = swarm.root / self.name
        self.socket = self.root / "run" / "docker.sock"  # its engine, for `docker -H` from the host
        # The node's clone of the project (make static data done, as Stack does): its own folders.
        self.site = Stack(self.root, "swarm-node")
        self.private = self.public = None

    def docker(self, *args, check=True, timeout=600, **kwargs):
        return run(["docker", "-H", f"unix://{self.socket}", *args], check=check, timeout=timeout, **kwargs)

    def sh(self, script, *args):
        """A shell script run as root inside the node (given as text, with arguments)."""
        return run(["docker", "exec", "-i", self.name, "sh", "-s", *args], input=script)

    def address(self, network):
        template = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
        return run(["docker", "inspect", "-f", template, self.name]).stdout.strip()


class Swarm:
    """Nodes named <name>-n1..nN (n1 the manager), their networks, registry, database and nginx.
    Use as a context manager: everything it made is removed afterwards, cgroups included."""

    def __init__(self, root, count=3, name="sitekit-swarm"):
        self.name = f"{name}-{SESSION}"
        self.root = Path(root) / self.name
        self.root.mkdir(parents=True)
        self.root.chmod(0o755)
        self.count, self.nodes, self.networks = count, [], []
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def network(self, suffix):
        name = f"{self.name}-{suffix}"
        run(["docker", "network", "create", name])
        self.networks.append(name)
        template = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}"
        config = run(["docker", "network", "inspect", "-f", template, name])
        subnet, gateway = config.stdout.split()
        return name, subnet, gateway

    def start(self):
        from tests.harness.registry import local_registry  # (registry imports stack, as this does)

        image = node_image()
        self.private_net, self.private_subnet, self.gateway = self.network("private")
        self.public_net, self.public_subnet, self.public_gateway = self.network("public")
        store = self.root / "registry"
        store.mkdir()
        self.push = self.stack.enter_context(local_registry(store))  # the host pushes to loopback
        self.pull = self.stack.enter_context(local_registry(store, host=self.gateway))  # nodes pull
        assert self.push and self.pull, "docker-registry is not installed: run .ci/provision"
        self.cluster = Cluster(listen=("127.0.0.1", self.gateway), hba_networks=(self.private_subnet,))
        self.cluster.start()
        self.stack.callback(self.cluster.stop)
        self.database = self.cluster.name
        for index in range(1, self.count + 1):
            self.nodes.append(self.start_node(Node(self, index), image))
        manager = self.nodes[0]
        wait_for(lambda: all(self.engine_up(node) for node in self.nodes), 120, what="the nodes' engines")
        manager.docker("swarm", "init", "--advertise-addr", manager.private)
        token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        for node in self.nodes[1:]:
            node.docker("swarm", "join", "--token", token, "--advertise-addr", node.private, manager.private)
        self.nginx = [self.start_nginx(node) for node in self.nodes]
        self.front = Front(self.nginx)

    def engine_up(self, node):
        return node.socket.exists() and node.docker("info", check=False).returncode == 0

    def start_node(self, node, image):
        (node.root / "run").mkdir()
        (node.root / "docker").mkdir()
        argv = ["docker", "run", "-d", "--name", node.name, "--hostname", node.name.rsplit("-", 1)[1]]
        argv += ["--network", self.private_net, "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
        argv += [f"--cap-add={cap}" for cap in CAPS.split()] + [f"--security-opt={opt}" for opt in OPTS]
        argv += ["--device", "/dev/net/tun", "--tmpfs", "/run:exec"]
        argv += ["-v", f"{node.root}/docker:/var/lib/docker"]  # on disk: overlay2 works there, not on tmpfs
        argv += ["-v", f"{node.root}/run:/node"]  # its engine's socket, for the host
        argv += ["-v", f"{node.site.static}:{SITE_DIR}/static", "-v", f"{node.site.data}:{SITE_DIR}/data"]
        argv += [image, "dockerd", "--storage-driver=overlay2", "--exec-opt=native.cgroupdriver=cgroupfs"]
        argv += ["--cgroup-parent", f"/{node.name}", "--insecure-registry", self.pull]
        argv += ["-H", "unix:///var/run/docker.sock", "-H", "unix:///node/docker.sock"]
        run(argv)
        run(["docker", "network", "connect", self.public_net, node.name])
        node.private, node.public = node.address(self.private_net), node.address(self.public_net)
        return node

    def start_nginx(self, node):
        """The node's nginx site as the operator installs it: make nginx-site, then make swarm-upstream
        with the other nodes' private addresses (here its own too: this nginx runs on the host)."""
        nginx = Nginx(node.root, node.site)
        peers = " ".join(other.private for other in self.nodes if other is not node)
        make = ["make", "-s", "swarm-upstream", f"SELF={node.private}", f"PEERS={peers}"]
        make += [f"NGINX_DIR={nginx.dir}", "NGINX=true", f"SITE={node.site.name}", f"APP_PORT={APP_PORT}"]
        run(make, cwd=node.site.dir)
        return nginx.start()

    def publish(self, image):
        """Push an image of the host's to the registry; the name the nodes pull it by (its digest)."""
        name = f"{self.push}/site:{image.replace(':', '-').replace('/', '-')}"
        run(["docker", "tag", image, name])
        run(["docker", "push", name])
        digest = run(["docker", "image", "inspect", "-f", "{{range .RepoDigests}}{{println .}}{{end}}", name])
        [found] = [line for line in digest.stdout.split() if line.startswith(f"{self.push}/site@")]
        run(["docker", "image", "rm", name])
        return found.replace(self.push, self.pull)

    def write_env(self, **extra):
        """The manager's clone's .env: the production example on the host's database (as a remote one)."""
        origins = ",".join(f"https://localhost:{nginx.https_port}" for nginx in self.nginx)
        env = site_env(self.cluster, 443, CSRF_TRUSTED_ORIGINS=origins, **extra)
        env["DB_HOST"] = self.gateway
        env.update(SITE="sitekit", APP_PORT=APP_PORT, PRIVATE_NETWORK=self.private_subnet)
        self.nodes[0].site.write_env(env)

    def deploy(self, image, check=True, timeout=900):
        """`make swarm-deploy IMAGE=...` in the manager's clone, driving the manager's engine."""
        env = {"DOCKER_HOST": f"unix://{self.nodes[0].socket}", "SITE_DIR": SITE_DIR}
        argv = ["make", "-s", "swarm-deploy", f"IMAGE={image}"]
        return run(argv, cwd=self.nodes[0].site.dir, check=check, timeout=timeout, env=environ(env))

    def active(self, count):
        """Only the first `count` nodes run the site (the others drained); waits until they serve."""
        manager = self.nodes[0]
        for index, node in enumerate(self.nodes):
            mode = "active" if index < count else "drain"
            manager.docker("node", "update", "--availability", mode, node.name.rsplit("-", 1)[1])
        wait_for(lambda: len(self.serving()) == count, 180, what=f"{count} nodes serving")
        wait_for(lambda: all(status_through(nginx) == 200 for nginx in self.nginx[:count]), 60, what="nginx")

    def serving(self):
        """The image each node's task runs (node name -> image), from the manager."""
        out = self.nodes[0].docker("service", "ps", "sitekit_app", "--filter", "desired-state=running",
                                   "--format", "{{.Node}} {{.Image}} {{.CurrentState}}").stdout  # fmt: skip
        return {line.split()[0]: line.split()[1] for line in out.splitlines() if " Running " in line}

    def __exit__(self, *exc):
        for node in self.nginx if hasattr(self, "nginx") else ():
            node.stop()
        for node in self.nodes:
            run(["docker", "rm", "-f", "-v", node.name], check=False, timeout=120)
        for name in self.networks:
            run(["docker", "network", "rm", name], check=False)
        for node in self.nodes:
            remove_cgroups(node.name)
        self.stack.close()
        run(["rm", "-rf", str(self.root)], check=False)


def environ(extra):
    """A shell's environment as an operator's: not this test process's DB_*, SECRET_KEY... (the
    unit tests' settings), which would win over .env."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}


def remove_cgroups(name):
    """What a node's engine made under /sys/fs/cgroup/*/<name> (cgroup v1: one tree per controller),
    deepest first: an empty cgroup is removed by rmdir, never by deleting its files."""
    for top in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


class Front:
    """The nodes' nginx sites in turn, as visitors who were given the nodes' addresses (several A
    records) spread over them: each request, and each new connection, to the next one. Looks like
    an Nginx to traffic.Load and http.Browser."""

    def __init__(self, sites):
        self.sites, self.host = sites, "localhost"
        self._turn = itertools.cycle(sites)

    @property
    def https_port(self):
        return next(self._turn).https_port

    def request(self, path, **options):
        return next(self._turn).request(path, **options)


def reaches(address, port, source, timeout=3):
    """Whether a TCP connection from source (a local address) to address:port is accepted."""
    try:
        with socket.create_connection((address, port), timeout, (source, 0)):
            return True
    except OSError:
        return False


def status_through(nginx, path="/healthz"):
    return http.status(nginx.https_port, path, https=True, host="localhost")

"""The real stack: the project's own docker-compose.yml, run from a copy of the project with only
paths, ports and environment overridden (in .env, as an operator would), against a host PostgreSQL.

Sessions overlap safely: every stack's SITE (its compose project and image name) carries this
process's SESSION suffix, Docker gives each its own network, and cleanup() removes only the images
this process built.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import envfile
from tests.harness.envfile import example_with
from tests.harness.pg import Cluster, free_port

REPO = Path(__file__).resolve().parents[2]


def _dockerfile_base():
    """The Dockerfile's default base image: the one place it is named."""
    return re.search(r"^ARG PYTHON_IMAGE=(\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)


# What stacks build on: PYTHON_IMAGE, as `make test` passes it (from the shell, .env or the
# Dockerfile), else the Dockerfile's default; offline, the tag scripts/build-offline-base.sh prints.
BASE_IMAGE = os.environ.get("PYTHON_IMAGE") or _dockerfile_base()
DOCKER_POOLS = ("172.16.0.0/12", "192.168.0.0/16")  # Docker's default address pools: any stack's network
SESSION = secrets.token_hex(3)  # in every project name and tag this process makes
# Each stack's .env names its site, port and image; the same variables from the shell (compose
# prefers them to .env) would give every stack the caller's site instead.
for _name in ("SITE", "APP_PORT", "APP_IMAGE", "COMPOSE_PROJECT_NAME"):
    os.environ.pop(_name, None)
_NOT_COPIED = {".git", ".venv", "venv", ".env", "static", "data"}  # local state, at the top level
_CACHES = {"__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"}
_images_built = set()  # ids of the images this process built


def tag(name):
    """An image tag of this session's own: cleanup() removes it, other sessions never touch it."""
    return f"{name}-{SESSION}:latest"


def _copy_ignore(directory, names):
    """What a fresh clone would not have: local state at the top level, caches anywhere."""
    top = Path(directory) == REPO
    return [name for name in names if name in _CACHES or (top and name in _NOT_COPIED)]


def run(argv, *, check=True, timeout=600, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        checked(argv, result)
    return result


def checked(argv, result):
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def docker_gateway():
    """The docker0 address: where host.docker.internal (host-gateway) points from a container."""
    out = run(["ip", "-4", "-o", "addr", "show", "docker0"]).stdout
    return out.split()[3].split("/")[0]


def host_database():
    """A throwaway PostgreSQL on the host as on a VPS, started: listening on the docker0 address (where
    host.docker.internal points), pg_hba allowing Docker's address pools. Call .stop() when done."""
    return Cluster(listen=("127.0.0.1", docker_gateway()), hba_networks=DOCKER_POOLS).start()


def build_pull(image):
    """BUILD_PULL for a base image, by the Makefile's rule: "false" for one that is here with no
    registry digest (built on this machine, like the offline base), else "true"."""
    template = "{{if .RepoDigests}}true{{else}}false{{end}}"
    result = run(["docker", "image", "inspect", "-f", template, image], check=False)
    return result.stdout.strip() if result.returncode == 0 else "true"


def record_build(image):
    """Note an image this session built, so cleanup() removes it (and earlier builds it untagged)."""
    found = run(["docker", "image", "inspect", "-f", "{{.Id}}", image], check=False).stdout.strip()
    if found:
        _images_built.add(found)


def cleanup():
    """Remove this session's images: its tags and every id recorded. The build cache stays, so the
    next run rebuilds in seconds."""
    listed = run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout.split()
    ours = [image for image in listed if image.rpartition(":")[0].endswith(f"-{SESSION}")]
    if ours or _images_built:
        run(["docker", "image", "rm", "--force", *ours, *_images_built], check=False)


def site_env(cluster, https_port, **extra):
    """The production example environment, pointed at this machine's database and ports."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "localhost",
        "CSRF_TRUSTED_ORIGINS": f"https://localhost:{https_port}",
        **cluster.env(host="host.docker.internal"),
        **extra,
    }


class Stack:
    """One compose project made from a copy of the repository, named `<name>-<SESSION>`.
    image: the tag to run (the session's shared one by default); own_image=True: a tag of its own
    (for a stack whose copy is edited and rebuilt)."""

    def __init__(self, root, name, *, env=None, image=None, own_image=False):
        self.name = f"{name}-{SESSION}"
        self.dir = Path(root) / self.name
        shutil.copytree(REPO, self.dir, ignore=_copy_ignore)
        self.port = free_port()
        self.image = tag(name) if own_image else (image or tag("sitekit-e2e"))
        self.static = self.dir / "static"
        self.static.mkdir()
        os.chown(self.static, 33, 33)  # as `make up` does, before Docker would make it root's
        self.data = self.dir / "data"  # the entrypoint's marker, the trial's SQLite: as `make data` does
        self.data.mkdir()
        os.chown(self.data, 33, 33)
        self.env, self.account = {}, {}
        self.write_env(env or {})

    def write_env(self, env):
        """.env = .env.example with these variables set (the stack's SITE, port and image too)."""
        self.env = env
        base = {"PYTHON_IMAGE": BASE_IMAGE, "SITE": self.name, "APP_PORT": self.port}
        if self.image != f"{self.name}:latest":
            base["APP_IMAGE"] = self.image  # a shared image, not the one SITE names
        settings = {**base, **self.account, **env}
        # As make would (Makefile, BUILD_PULL): no pull of a base that no registry has.
        settings.setdefault("BUILD_PULL", build_pull(settings["PYTHON_IMAGE"]))
        (self.dir / ".env").write_text(example_with(settings))

    def make_account(self):
        """`sudo make account` in the copy, as the VPS guide runs it: the site's own system account,
        named like SITE (remove_account() deletes it); its APP_UID/APP_GID go into every .env after."""
        run(["make", "-s", "account"], cwd=self.dir)
        written = envfile.parse((self.dir / ".env").read_text())
        self.account = {key: written[key] for key in ("APP_UID", "APP_GID")}
        return int(self.account["APP_UID"]), int(self.account["APP_GID"])

    def remove_account(self):
        run(["userdel", self.name], check=False)  # its group goes with it

    @contextlib.contextmanager
    def serving_as_its_account(self):
        """The production path's start: its own account, up and healthy, its nginx (self.nginx) in
        front; afterwards all of it stopped and the account removed."""
        try:
            self.make_account()
            self.up()
        except AssertionError:
            print(self.logs())
            self.remove_account()
            raise
        self.nginx.start()
        try:
            yield self
        finally:
            print(self.logs()[-3000:])
            self.nginx.stop()
            self.down()
            self.remove_account()

    def compose(self, *args, check=True, timeout=600):
        """docker compose in the copy, on the stack's project."""
        argv = ["docker", "compose", "-p", self.name, *args]
        result = run(argv, cwd=self.dir, check=False, timeout=timeout)
        if args and args[0] in ("build", "up"):
            record_build(self.image)
        return checked(argv, result) if check else result

    @property
    def subnet(self):
        """The subnet Docker gave the stack's network (none is pinned)."""
        template = "{{range .IPAM.Config}}{{.Subnet}}{{end}}"
        return run(["docker", "network", "inspect", "-f", template, f"{self.name}_default"]).stdout.strip()

    def up(self, *extra, check=True, timeout=300):
        return self.compose("up", "-d", "--wait", *extra, check=check, timeout=timeout)

    def down(self):
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)

    def logs(self):
        return self.compose("logs", "--no-color", "app", check=False).stdout

    def container(self):
        return self.compose("ps", "-aq", "app").stdout.split()[0]

    def inspect(self, template):
        return run(["docker", "inspect", "-f", template, self.container()]).stdout.strip()

    def state(self):
        return json.loads(self.inspect("{{json .State}}"))

    def server_pid(self):
        """The entrypoint's process, gunicorn's master once it runs: the child of the container's
        init (tini: compose's init: true), as the host's /proc sees it."""
        [pid] = children(self.state()["Pid"])
        return pid

    def manage(self, *args):
        """python manage.py ... inside the running container (as the container's own user)."""
        return run(["docker", "exec", self.container(), "python", "manage.py", *args])

    @contextlib.contextmanager
    def superuser(self):
        """A site administrator for the duration of a test; yields (username, password)."""
        username, password = f"e2e-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        model = "from django.contrib.auth.models import User; User.objects"
        self.manage("shell", "-c", f"{model}.create_superuser({username!r}, password={password!r})")
        try:
            yield username, password
        finally:
            self.manage("shell", "-c", f"{model}.filter(username={username!r}).delete()")


def children(pid):
    """The process ids whose parent is pid, from the host's /proc."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            found.update((task / "children").read_text().split())
    return found


def wait_for(predicate, timeout=60, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def workdir(prefix="sitekit-e2e-"):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # nginx's workers (www-data) traverse it to a stack's static folder
    return path

"""The local stand-ins .ci/workflow.py puts where the fork's workflow uses GitHub or a registry. Each
action's and service's docstring is its declared swap (printed by --plan; tests/test_workflow.py
checks that every `uses:` has one)."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import actions


class Refused(Exception):
    """Something this runner cannot stand in for: one line, non-zero exit."""


class StepFailed(Exception):
    """A step ran and failed: the job stops, the run exits non-zero."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_use(host, port):
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


BARE_PYTHON = r"(?<![\w/.-])python:\d[\w.-]*"  # Docker Hub's python image, not one named sitekit/python:...
SYSTEMCTL = """#!/bin/sh
[ "$1 $2" = "disable --now" ] || { echo "systemctl $*: no systemd here" >&2; exit 1; }
shift 2
for unit; do [ ! -x "/etc/init.d/$unit" ] || "/etc/init.d/$unit" stop >/dev/null 2>&1 || :; done
"""


class Local:
    """This machine standing in for GitHub's runner: context values, swaps, and what it started."""

    def __init__(self, repo, event, ref, pytest_args):
        self.repo, self.event, self.pytest_args = repo, event, pytest_args
        git = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True).stdout.strip()  # noqa: E731
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        self.ref = ref or f"refs/heads/{'main' if branch in ('', 'HEAD') else branch}"
        self.sha = git("rev-parse", "HEAD")
        self.tmp = Path(tempfile.mkdtemp(prefix="workflow-"))
        self.swapped, self.not_here, self.timings = {}, {}, {}
        self.extra_env, self.path_first, self.images = {}, [], set()
        self._base = self._registry = None
        self.engine = actions.Engine(self)
        self._shims()
        driver = shutil.which("chromedriver")
        if driver:
            self.extra_env["CHROMEWEBDRIVER"] = os.path.dirname(driver)
            self.swap(
                f"CHROMEWEBDRIVER (the runner image's chromedriver) -> {driver} (Debian's chromium-driver)"
            )

    def say(self, text):
        print(f"[workflow] {text}", flush=True)

    def swap(self, text):
        if text not in self.swapped:
            self.swapped[text] = True
            self.say(f"swap: {text}")

    def skip(self, text):
        if text not in self.not_here:
            self.not_here[text] = True
            self.say(f"not here: {text}")

    def context(self):
        name = self.repo.name.lower()
        github = {
            "sha": self.sha, "ref": self.ref, "ref_name": self.ref.split("/", 2)[-1],
            "event_name": self.event, "repository": f"local/{name}", "repository_owner": "local",
            "actor": "local", "run_id": str(int(time.time())), "run_attempt": "1", "workflow": "ci",
            "server_url": "https://github.com",
        }  # fmt: skip
        return {
            "github": github,
            "secrets": {"GITHUB_TOKEN": ""},
            "runner": {"os": "Linux", "temp": str(self.tmp)},
        }

    def _shims(self):
        """Commands the runner image has and this machine does not: small scripts first on PATH."""
        shims = self.tmp / "shims"
        shims.mkdir()
        if os.geteuid() == 0 and not shutil.which("sudo"):
            (shims / "sudo").write_text(
                '#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec env "$@"\n'
            )
            self.swap("sudo: a shim that runs the command as is (root already; the environment is kept)")
        if not Path("/run/systemd/system").exists():
            (shims / "systemctl").write_text(SYSTEMCTL)
            self.swap("systemctl disable --now: no systemd here; a shim stops each unit with its init script")
        for shim in shims.iterdir():
            shim.chmod(0o755)
        self.path_first.append(str(shims))

    def override(self, script):
        if self.pytest_args is None:
            return script
        new = re.sub(r"PYTEST_ARGS=\S+", lambda m: f"PYTEST_ARGS='{self.pytest_args}'", script)
        if new != script:
            self.swap(f"OVERRIDE (development only, --pytest-args): PYTEST_ARGS='{self.pytest_args}'")
        return new

    def base(self):
        """The offline base image's tag, as scripts/build-offline-base.sh prints it (built if missing)."""
        if self._base is None:
            out = subprocess.run(
                ["scripts/build-offline-base.sh"], cwd=self.repo, capture_output=True, text=True
            )
            if out.returncode:
                raise StepFailed(f"scripts/build-offline-base.sh failed: {out.stderr.strip()[-500:]}")
            self._base = out.stdout.split()[-1]
        return self._base

    def registry(self):
        """A throwaway registry (Debian's docker-registry) on loopback; plain HTTP is allowed there."""
        if self._registry is None:
            port, root = free_port(), self.tmp / "registry"
            root.mkdir()
            config = root / "registry.yml"
            config.write_text(
                f"version: 0.1\nlog: {{level: error}}\n"
                f"storage: {{filesystem: {{rootdirectory: {root}/data}}}}\n"
                f"http: {{addr: 127.0.0.1:{port}}}\n"
            )
            binary = shutil.which("docker-registry") or "docker-registry"
            server = subprocess.Popen(
                [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self._registry = (f"localhost:{port}", server)
            self.registry_config = config  # the attesting engine serves the same store in its own netns
            for _ in range(50):
                if in_use("127.0.0.1", port):
                    break
                time.sleep(0.2)
            else:
                raise StepFailed("the local registry (docker-registry) did not start")
            self.swap(
                f"ghcr.io -> {self._registry[0]} (Debian's docker-registry on loopback, removed at the end)"
            )
        return self._registry[0]

    def swap_value(self, value):
        """A value the workflow gives: registry images and runner-image paths become local ones."""
        if re.search(BARE_PYTHON, value):
            for image in re.findall(BARE_PYTHON, value):
                self.swap(
                    f"{image} -> {self.base()} (the offline base, from Debian packages: no registry here)"
                )
            value = re.sub(BARE_PYTHON, lambda m: self.base(), value)
        if "ghcr.io" in value:
            value = re.sub(r"\bghcr\.io\b", self.registry(), value)
        if "/usr/bin/google-chrome" in value and shutil.which("chromium"):
            value = value.replace("/usr/bin/google-chrome", shutil.which("chromium"))
            self.swap(f"/usr/bin/google-chrome (the runner image's) -> {shutil.which('chromium')} (Debian's)")
        return value

    def cannot_run(self, matrix):
        for value in matrix.values():
            if isinstance(value, str) and re.fullmatch(r"python:[\w.]+-alpine", value):
                return (
                    f"{value} cannot be pulled here, and its only stand-in is the Debian offline base, "
                    "which the slim variant of this job builds and tests"
                )
        return None

    @contextlib.contextmanager
    def services(self, services):
        with contextlib.ExitStack() as stack:
            for name, service in services.items():
                self.say(f"  service {name}: {service_swap(service).__doc__}")
                stack.enter_context(service_swap(service)(self, service))
            yield

    def run(self, title, job):
        self.say(f"job {title}")
        started = time.monotonic()
        try:
            result = job()
        except (StepFailed, Refused) as error:
            result = f"failed: {error}"
        self.timings[title] = time.monotonic() - started
        self.say(f"job {title}: {result} ({self.timings[title]:.0f} s)")
        return result

    def close(self):
        for image in sorted(self.images):
            subprocess.run(["docker", "image", "rm", image], capture_output=True)
        self.engine.stop()
        if self._registry:
            self._registry[1].terminate()
            self._registry[1].wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def summary(self, results):
        self.say("---- summary ----")
        for title, result in results.items():
            self.say(
                f"{title:28} {result}" + (f" ({self.timings[title]:.0f} s)" if title in self.timings else "")
            )
        for text in self.swapped:
            self.say(f"swapped: {text}")
        for text in self.not_here:
            self.say(f"not here: {text}")
        counts = {word: sum(r.startswith(word) for r in results.values()) for word in ("passed", "failed")}
        others = len(results) - sum(counts.values())
        self.say(f"jobs: {counts['passed']} passed, {counts['failed']} failed, {others} skipped or not here")
        return 1 if counts["failed"] else 0


@contextlib.contextmanager
def postgres_service(local, service):
    """a throwaway cluster of the host's PostgreSQL on the service's port, superuser postgres with the
    service's POSTGRES_PASSWORD"""
    mapping = str((service.get("ports") or ["5432:5432"])[0]).split(":")
    host, port = (mapping[0] if len(mapping) == 3 else "127.0.0.1"), int(mapping[-2])
    if in_use(host, port):
        raise Refused(f"{host}:{port} is in use: the postgres service's port cannot be had here")
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not binaries:
        raise Refused("no PostgreSQL server here: apt-get install postgresql (bash .ci/provision does)")
    root = Path(tempfile.mkdtemp(prefix="workflow-pg-"))
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    (root / "pw").write_text((service.get("env") or {}).get("POSTGRES_PASSWORD", "postgres"))
    if as_owner:
        shutil.chown(root, "postgres")
    options = f"-c listen_addresses={host} -c port={port} -c unix_socket_directories={root} -c fsync=off"
    pg_ctl = [
        *as_owner,
        str(binaries[-1] / "pg_ctl"),
        "-D",
        str(root / "data"),
        "-l",
        str(root / "log"),
        "-w",
    ]
    try:
        initdb = [*as_owner, str(binaries[-1] / "initdb"), "-D", str(root / "data"), "-U", "postgres"]
        subprocess.run(
            [*initdb, f"--pwfile={root}/pw", "--auth=scram-sha-256"], check=True, capture_output=True
        )
        subprocess.run([*pg_ctl, "-o", options, "start"], check=True, capture_output=True)
        local.say(f"  service postgres: PostgreSQL {binaries[-1].parent.name} on {host}:{port}")
        yield
    except subprocess.CalledProcessError as error:
        raise StepFailed(
            f"the postgres service did not start: {error.stderr.decode().strip()[-300:]}"
        ) from None
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


SERVICES = {"postgres": postgres_service}


def service_swap(service):
    image = str(service.get("image", "")).split(":")[0]
    if image not in SERVICES:
        raise Refused(f"no local swap declared for the service image {image!r} (.ci/swaps.py)")
    return SERVICES[image]


def action_swap(name):
    if name not in actions.ACTIONS:
        raise Refused(
            f"no local swap declared for {name} (.ci/actions.py): this runner cannot stand in for it"
        )
    return actions.ACTIONS[name]

"""The workflow's `uses:` actions as .ci/workflow.py runs them here: each function's docstring is its
declared swap (tests/test_workflow.py holds the workflow to it)."""

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import swaps

ENGINE_IMAGE = "sitekit-ci/dockerd:unstable"  # .ci/provision builds it from Debian unstable's docker.io


def lines(value):
    return [item.strip() for item in re.split(r"[\n,]", value or "") if item.strip()]


def checkout(local, inputs):
    """the clone itself: this working tree at its HEAD"""
    local.swap(f"actions/checkout -> this working tree ({local.repo}, {local.sha[:12]})")


def setup_python(local, inputs):
    """a local Python of that version (pyenv's or /usr/bin's) first on PATH; else the newest here, named"""
    version = inputs["python-version"]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{root}/versions/{version}*/bin/python{version}")) + [
        path
        for path in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}")
        if os.path.exists(path)
    ]
    if not found:
        key = lambda p: tuple(int(n) for n in re.findall(r"python(\d+)\.(\d+)$", p)[0])  # noqa: E731
        found = sorted(
            glob.glob(f"{root}/versions/3.*/bin/python3.*[0-9]") + glob.glob("/usr/bin/python3.*[0-9]"),
            key=key,
        )
        if not found:
            raise swaps.StepFailed(f"no Python {version} and no other Python 3 here")
        local.skip(
            f"actions/setup-python {version}: no Python {version} on this host (here it runs inside the "
            f"offline base image, as the images, make lock and the lockfile check use it); host tools use "
            f"{found[-1]}"
        )
    local.path_first.insert(0, os.path.dirname(found[-1]))
    local.swap(f"actions/setup-python {version} -> {found[-1]}")


def setup_buildx(local, inputs):
    """the engine's own buildx (docker driver); publish builds in the attesting engine (sitekit-ci/dockerd)"""
    local.swap("docker/setup-buildx-action -> this engine's buildx, as installed by .ci/provision")


def setup_qemu(local, inputs):
    """none: arm64 is not built here (an arm64 offline base and build take half an hour); named"""
    local.skip(
        "docker/setup-qemu-action: arm64 is not emulated by this runner: binfmt_misc and Debian's "
        "qemu-user-static do it here, but an arm64 offline base and the arm64 build under emulation "
        "take about 30 min on this machine, too long for every CI run (docs/ci.md)"
    )


def login(local, inputs):
    """none: the local registry on loopback takes pushes without a login"""
    local.swap(f"docker/login-action {inputs.get('registry', '')}: no login (a local registry needs none)")


def metadata(local, inputs):
    """the tags and OCI labels docker/metadata-action would compute (sha, branch, tag, semver, raw; flavor)"""
    ctx = local.context()["github"]
    flavor = dict(item.split("=", 1) for item in lines(inputs.get("flavor")) if "=" in item)
    onlatest = flavor.get("onlatest", "false") == "true"  # one flat map: prefix's and suffix's share it here
    ref = local.ref
    branch = ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else None
    tag = ref[len("refs/tags/") :] if ref.startswith("refs/tags/") else None
    semver = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", tag or "")
    values = []  # (priority, value): the version output is the highest priority's
    for line in (t for t in (inputs.get("tags") or "").splitlines() if t.strip()):
        attrs = dict(item.split("=", 1) for item in line.split(","))
        kind, enable = attrs.get("type"), attrs.get("enable", "true")
        enable = enable.replace("{{is_default_branch}}", str(branch == "main").lower())
        if enable != "true":
            continue
        if kind == "sha":
            values.append((100, attrs.get("prefix", "sha-") + local.sha[:7]))
        elif kind == "ref" and attrs.get("event") in ("branch", "tag"):
            name = branch if attrs["event"] == "branch" else tag
            if name:
                values.append((600, re.sub(r"[^a-zA-Z0-9._-]+", "-", name)))
        elif kind == "semver":
            if semver:
                major, minor, patch = semver.groups()
                pattern = attrs["pattern"].replace("{{version}}", f"{major}.{minor}.{patch}")
                values.append((900, pattern.replace("{{major}}", major).replace("{{minor}}", minor)))
        elif kind == "raw":
            values.append((200, attrs["value"]))
        else:
            raise swaps.Refused(f"docker/metadata-action: tag type {kind!r} has no local equivalent here")
    if flavor.get("latest") == "true" or (flavor.get("latest", "auto") == "auto" and semver):
        values.append((200, "latest"))

    def flavored(value):
        if value == "latest" and not onlatest:
            return value
        return flavor.get("prefix", "") + value + flavor.get("suffix", "")

    tags = list(dict.fromkeys(flavored(v) for _, v in sorted(values, key=lambda pv: -pv[0])))
    version = tags[0] if tags else ""
    images = lines(inputs.get("images"))
    labels = {
        "org.opencontainers.image.title": ctx["repository"].split("/")[-1],
        "org.opencontainers.image.source": f"{ctx['server_url']}/{ctx['repository']}",
        "org.opencontainers.image.url": f"{ctx['server_url']}/{ctx['repository']}",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "org.opencontainers.image.revision": local.sha,
    }
    local.swap("docker/metadata-action -> its tags and labels computed here (the default branch: main)")
    local.say(f"  tags: {' '.join(tags)} (version {version})")
    return {
        "tags": "\n".join(f"{image}:{t}" for image in images for t in tags),
        "labels": "\n".join(f"{k}={v}" for k, v in labels.items()),
        "version": version,
    }


def build_push(local, inputs):
    """`docker buildx build` with the same inputs (context, file, target, build-args, tags, labels, load,
    push, platforms; sbom and provenance in the attesting engine); base image and registry swapped"""
    argv = ["docker", "buildx", "build", "--metadata-file", str(local.tmp / "metadata.json")]
    for flag, key in (("--file", "file"), ("--target", "target")):
        if inputs.get(key):
            argv += [flag, inputs[key]]
    build_args = (inputs.get("build-args") or "").splitlines()
    given = {arg.split("=", 1)[0] for arg in build_args}
    dockerfile = Path(local.repo, inputs.get("context", "."), inputs.get("file") or "Dockerfile")
    for name, default in re.findall(r"^ARG (\w+)=(python:\S+)", dockerfile.read_text(), re.M):
        if name not in given:  # the Dockerfile's own default base is a registry image too
            build_args.append(local.swap_value(f"{name}={default}"))
    for arg in filter(None, build_args):
        argv += ["--build-arg", arg.strip()]
    tags = lines(inputs.get("tags"))
    for tag in tags:
        argv += ["--tag", tag]
    for label in filter(None, (inputs.get("labels") or "").splitlines()):
        argv += ["--label", label]
    for key in ("cache-from", "cache-to"):
        if inputs.get(key):
            local.skip(
                f"build-push-action {key} {inputs[key]}: the GitHub Actions cache exists on GitHub only"
            )
    push, attest = inputs.get("push") == "true", {}
    env = dict(os.environ)
    if push and (inputs.get("provenance") or inputs.get("sbom") == "true"):
        env["DOCKER_HOST"] = local.engine.start()  # the host's docker driver cannot attach attestations
        argv += ["--network", "host"]  # no bridge in the attesting engine: RUN steps use its netns
        if inputs.get("provenance"):
            argv += ["--provenance", inputs["provenance"]]
            attest["Provenance"] = inputs["provenance"]
        if inputs.get("sbom") == "true":
            local.skip(
                "build-push-action sbom: true: BuildKit's SBOM generator image "
                "(docker/buildkit-syft-scanner) cannot be pulled here and Debian packages no syft: "
                "the SBOM is attached on GitHub only"
            )
    platforms = lines(inputs.get("platforms"))
    if platforms:
        here = [p for p in platforms if p == "linux/amd64"]
        local.skip(
            f"platforms {','.join(p for p in platforms if p not in here)}: not built here (amd64-only base)"
        )
        argv += ["--platform", ",".join(here)]
    argv += ["--push"] if push else (["--load"] if inputs.get("load") == "true" else [])
    argv.append(inputs.get("context", "."))
    local.say("  " + " ".join(argv))
    if subprocess.run(argv, cwd=local.repo, env=env).returncode:
        raise swaps.StepFailed("docker buildx build failed")
    local.images.update(tags)
    result = json.loads((local.tmp / "metadata.json").read_text())
    digest = result.get("containerimage.digest", "")
    for key in attest if push and tags else ():
        found = inspect(tags[0].rsplit(":", 1)[0] + "@" + digest, key)
        local.say(f"  check: {tags[0]}@{digest} carries {key.lower()}: {found}")
    return {
        "digest": digest,
        "imageid": result.get("containerimage.config.digest", ""),
        "metadata": json.dumps(result),
    }


def inspect(reference, key):
    """What a user runs to see what they pulled: buildx imagetools inspect --format '{{json .KEY}}'."""
    argv = ["docker", "buildx", "imagetools", "inspect", reference, "--format", f"{{{{json .{key}}}}}"]
    out = subprocess.run(argv, capture_output=True, text=True)
    data = json.loads(out.stdout or "null") if out.returncode == 0 else None
    if not data or not data.get("SLSA"):
        raise swaps.StepFailed(f"{reference} has no {key.lower()} attestation: {out.stderr.strip()[-300:]}")
    materials = [m.get("uri", "") for m in data["SLSA"].get("materials", [])]
    return f"SLSA {data['SLSA'].get('buildType', '')}, materials: {' '.join(materials) or 'none'}"


class Engine:
    """Docker 28 (Debian unstable's docker.io, containerd image store) in a container of the host's engine:
    its builder attaches provenance, which the host's Engine 20.10 docker driver cannot."""

    def __init__(self, local):
        self.local, self.name, self.host = local, f"workflow-engine-{os.getpid()}", None
        self.registry = None  # its own docker-registry process, in the engine's network namespace

    def start(self):
        if self.host:
            return self.host
        if subprocess.run(["docker", "image", "inspect", ENGINE_IMAGE], capture_output=True).returncode:
            raise swaps.Refused(f"no {ENGINE_IMAGE} image for attestations: run bash .ci/provision")
        sock = self.local.tmp / "engine"
        sock.mkdir()
        (sock / "daemon.json").write_text(
            '{"features": {"containerd-snapshotter": true}, "storage-driver": "overlayfs", "iptables": false,'
            ' "bridge": "none", "hosts": ["unix:///sock/docker.sock"]}'
        )
        caps = [
            "SYS_ADMIN",
            "NET_ADMIN",
            "NET_RAW",
            "SYS_PTRACE",
            "MKNOD",
            "SYS_CHROOT",
            "SETFCAP",
            "DAC_READ_SEARCH",
        ]
        # Its own netns: a dockerd without a bridge deletes its netns's docker0 (on host: the host's).
        argv = ["docker", "run", "-d", "--name", self.name, "--cgroupns", "host"]
        argv += [f"--cap-add={cap}" for cap in caps]  # --privileged is refused on this kind of machine
        for opt in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
            argv += ["--security-opt", opt]
        argv += ["--tmpfs", "/run:exec"]
        for name in ("docker", "containerd"):  # on disk, not in memory: a build's layers take gigabytes
            (sock / name).mkdir()
            argv += ["-v", f"{sock / name}:/var/lib/{name}"]
        argv += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", f"{sock}:/sock"]
        argv += ["-v", f"{sock}/daemon.json:/etc/docker/daemon.json:ro", ENGINE_IMAGE]
        argv += ["dockerd", "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", f"/{self.name}"]
        bridge = Path("/sys/class/net/docker0")  # the host engine's bridge: it must survive this engine
        had_bridge = bridge.exists()
        subprocess.run(argv, check=True, capture_output=True)
        self.host = f"unix://{sock}/docker.sock"
        env = {**os.environ, "DOCKER_HOST": self.host}
        for _ in range(60):
            if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(1)
        else:
            raise swaps.StepFailed(f"the attesting engine did not start: docker logs {self.name}")
        if had_bridge and not bridge.exists():
            raise swaps.StepFailed("the attesting engine deleted the host's docker0 (give it its own netns)")
        self.serve_registry()
        base = self.local.base()
        save = subprocess.Popen(["docker", "save", base], stdout=subprocess.PIPE)
        subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=env, check=True, capture_output=True)
        save.wait()
        self.local.swap(
            f"publish builds in {ENGINE_IMAGE} (Docker 28, containerd store) run in a container: "
            "Engine 20.10's docker driver cannot attach attestations and Debian packages no BuildKit daemon"
        )
        return self.host

    def serve_registry(self):
        """The local registry's store, served at the same localhost:PORT in the engine's netns."""
        self.local.registry()
        inspect = ["docker", "inspect", "-f", "{{.State.Pid}}", self.name]
        pid = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()
        binary = shutil.which("docker-registry") or "docker-registry"
        argv = ["nsenter", "-t", pid, "-n", binary, "serve", str(self.local.registry_config)]
        self.registry = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self.local.registry().rsplit(":", 1)[1]
        probe = ["nsenter", "-t", pid, "-n", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"]
        for _ in range(50):
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise swaps.StepFailed("the registry in the attesting engine's network namespace did not start")

    def stop(self):
        if self.registry:
            self.registry.terminate()
            self.registry.wait()
        if self.host:
            subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)
            for group in glob.glob(f"/sys/fs/cgroup/*/{self.name}"):  # what the inner engine's cgroups leave
                for path in [*sorted(p for p in Path(group).rglob("*") if p.is_dir())[::-1], Path(group)]:
                    with contextlib.suppress(OSError):
                        path.rmdir()  # a cgroup's files go with its folder


# The inputs each stand-in honours: any other one in the workflow stops the runner (.ci/workflow.py plan).
INPUTS = {
    "actions/checkout": {"persist-credentials"},  # nothing to persist: no git credentials here
    "actions/setup-python": {"python-version"},
    "docker/setup-qemu-action": {"platforms"},
    "docker/login-action": {"registry", "username", "password"},
    "docker/metadata-action": {"images", "flavor", "tags"},
    "docker/build-push-action": {
        *("context", "file", "target", "build-args", "tags", "labels", "load", "push", "platforms"),
        *("sbom", "provenance", "cache-from", "cache-to"),
    },
}

ACTIONS = {
    "actions/checkout": checkout,
    "actions/setup-python": setup_python,
    "docker/setup-buildx-action": setup_buildx,
    "docker/setup-qemu-action": setup_qemu,
    "docker/login-action": login,
    "docker/metadata-action": metadata,
    "docker/build-push-action": build_push,
}

"""The container as shipped, checked from Docker's view and from inside: healthy, uid 33, read-only,
no capabilities, loopback-only port, `check --deploy` clean, no `.env` in the image; other commands
passed through the entrypoint; and its resource limits (docker-compose.yml), each hit from inside:
a runaway process meets the container's limits, not the VPS's."""

import gzip
import json
import secrets
import tarfile
from pathlib import Path

import pytest

from tests.harness import Stack, http, run


def test_docker_reports_the_container_healthy(stack):
    assert stack.state()["Health"]["Status"] == "healthy"


def test_server_process_runs_as_uid_33(stack):
    pid = stack.server_pid()
    with open(f"/proc/{pid}/status") as status:
        uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    assert uids == ["33", "33", "33", "33"]
    assert Path(f"/proc/{pid}/cmdline").read_text().split("\0")[1].endswith("gunicorn")


def test_the_entrypoint_passes_other_commands_through(stack, host_db):
    stack.compose(
        "run", "--rm", "-e", "DJANGO_SUPERUSER_PASSWORD=a-long-test-password",
        "app", "python", "manage.py", "createsuperuser", "--noinput", "--username", "moderator",
        "--email", "moderator@example.com",
    )  # fmt: skip
    assert host_db.psql("SELECT is_superuser FROM auth_user WHERE username = 'moderator'") == "t"


def exec_in(stack, *argv):
    return run(["docker", "exec", stack.container(), *argv], check=False)


def test_docker_runs_the_app_unprivileged_read_only_and_without_capabilities(stack):
    config = json.loads(stack.inspect("{{json .}}"))
    assert config["Config"]["User"] == "33:33"
    assert config["HostConfig"]["ReadonlyRootfs"] is True
    assert config["HostConfig"]["CapDrop"] == ["ALL"]
    assert not config["HostConfig"]["CapAdd"]
    assert config["HostConfig"]["SecurityOpt"] == ["no-new-privileges:true"]
    assert config["HostConfig"]["Privileged"] is False


def test_inside_the_root_filesystem_is_read_only_and_only_tmp_is_writable(stack):
    denied = exec_in(stack, "touch", "/app/x")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    assert exec_in(stack, "touch", "/tmp/x").returncode == 0  # the tmpfs: so touch itself works


@pytest.mark.parametrize("process", ["1", "self"], ids=["server", "exec-ed-process"])
def test_processes_have_no_capabilities_and_cannot_gain_privileges(stack, process):
    status = dict(
        line.split(":", 1) for line in exec_in(stack, "cat", f"/proc/{process}/status").stdout.splitlines()
    )
    assert status["Uid"].split() == ["33"] * 4
    for capabilities in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, capabilities
    assert status["NoNewPrivs"].strip() == "1"


def test_the_port_is_published_on_loopback_only(stack):
    bindings = json.loads(stack.inspect("{{json .HostConfig.PortBindings}}"))
    assert bindings == {"6868/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}]}
    published = run(["docker", "port", stack.container()]).stdout.split("\n")
    assert [line for line in published if line] == [f"6868/tcp -> 127.0.0.1:{stack.port}"]


def test_the_deployment_checks_pass_inside_the_image(stack):
    result = stack.manage("check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in result.stdout


def found_in_image(tar_path, needles):
    """Which of needles (bytes) occur in a `docker save` archive: the config JSON and every layer."""
    found = set()
    with tarfile.open(tar_path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            stream = archive.extractfile(member)
            if stream.peek(2)[:2] == b"\x1f\x8b":  # a compressed layer (OCI layout)
                stream = gzip.GzipFile(fileobj=stream)
            tail = b""
            while chunk := stream.read(1 << 20):
                window = tail + chunk
                found |= {needle for needle in needles if needle in window}
                tail = window[-64:]
    return found


def test_a_dot_env_in_the_build_context_never_reaches_the_image(stack, e2e_root):
    secret, control = f"leaked-{secrets.token_hex(16)}", f"copied-{secrets.token_hex(16)}"
    leak = Stack(e2e_root, "sitekit-sec-leak", env={"SECRET_KEY": secret}, own_image=True)
    assert secret in (leak.dir / ".env").read_text()
    # The positive control: the same kind of token in a file the Dockerfile does copy.
    base = leak.dir / "templates/base.html"
    base.write_text(base.read_text() + f"{{# {control} #}}\n")
    archive = e2e_root / "sitekit-sec-leak.tar"
    try:
        leak.compose("build")
        run(["docker", "save", "-o", archive, leak.image])
        found = found_in_image(archive, [secret.encode(), control.encode()])
    finally:
        archive.unlink(missing_ok=True)
        run(["docker", "image", "rm", "--force", leak.image], check=False)
    assert control.encode() in found, "the search did not find a token that is in the image"
    assert secret.encode() not in found, ".env from the build context is in the image"


MiB = 2**20


def in_container(stack, code):
    """Python in the running container, as its own user (uid 33)."""
    return run(["docker", "exec", stack.container(), "python", "-c", code], check=False, timeout=120)


def test_docker_applies_the_shipped_limits(stack):
    host = json.loads(stack.inspect("{{json .HostConfig}}"))
    assert host["Memory"] == 512 * MiB
    assert host["MemorySwap"] == 512 * MiB  # equal: no swap on top
    assert host["PidsLimit"] == 512
    assert host["Tmpfs"] == {"/tmp": "size=16m"}
    mounts = run(["docker", "exec", stack.container(), "cat", "/proc/mounts"]).stdout
    [tmp] = [line for line in mounts.splitlines() if line.split()[1] == "/tmp"]
    assert "size=16384k" in tmp and {"noexec", "nosuid", "nodev"} <= set(tmp.split()[3].split(","))


def test_a_full_tmp_is_an_error_not_the_hosts_memory(stack):
    result = in_container(
        stack,
        "import os\ntry:\n    open('/tmp/fill', 'wb').write(bytes(17 * 2**20))\nexcept OSError as e:\n"
        "    print(e.strerror)\nfinally:\n    os.remove('/tmp/fill')",
    )
    assert result.stdout.strip() == "No space left on device", result.stdout + result.stderr


def test_a_thread_bomb_stops_at_the_pids_limit(stack):
    code = (
        "import threading\nstop = threading.Event()\nn = 0\ntry:\n    for n in range(2000):\n"
        "        threading.Thread(target=stop.wait).start()\nexcept RuntimeError as e:\n"
        "    print(n, e)\nstop.set()"
    )
    started, _, error = in_container(stack, code).stdout.strip().partition(" ")
    assert error == "can't start new thread" and int(started) < 512
    assert http.status(stack.port, "/healthz") == 200  # the site carries on


def test_a_process_that_eats_memory_is_killed_and_the_site_carries_on(stack):
    result = in_container(stack, "hog = b'x' * (600 * 2**20); print('allocated')")
    assert result.returncode == 137 and "allocated" not in result.stdout  # SIGKILL by the OOM killer
    assert stack.state()["Running"] and http.status(stack.port, "/healthz") == 200

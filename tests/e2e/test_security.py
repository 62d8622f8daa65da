"""The container's security posture, as shipped: checked from Docker's view and from inside."""

import gzip
import json
import secrets
import tarfile

import pytest

from tests.harness import Stack, run


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

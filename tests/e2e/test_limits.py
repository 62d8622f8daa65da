"""Resource limits (docker-compose.yml): a runaway process in the container meets the container's
limits, not the VPS's. Numbers are read back from Docker and then hit from inside."""

import json

from tests.harness import http, run

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

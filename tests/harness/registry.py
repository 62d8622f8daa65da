"""A throwaway image registry on loopback (Debian's docker-registry): stands in for Docker Hub or
GHCR in the tests that pull, push or deploy by digest."""

import contextlib
import shutil
import subprocess

from tests.harness.net import free_port
from tests.harness.pg import reachable
from tests.harness.stack import wait_for


@contextlib.contextmanager
def local_registry(directory):
    """Serves a registry stored under `directory`; yields its address (`localhost:PORT`), which
    Docker reaches over plain HTTP (a registry on 127.0.0.0/8 needs no TLS). None if not installed."""
    binary = shutil.which("docker-registry")
    if not binary:
        yield None
        return
    port = free_port()
    config = directory / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory}/data}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    # Quiet: it logs every "blob unknown" a push checks for as an error.
    server = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: reachable("127.0.0.1", port), 30, what="the registry")
        yield f"localhost:{port}"
    finally:
        server.terminate()
        server.wait()

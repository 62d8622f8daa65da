"""A throwaway image registry on loopback (Debian's docker-registry): stands in for Docker Hub or
GHCR in the tests that pull, push or deploy by digest."""

import contextlib
import shutil
import subprocess

from tests.harness.net import free_port
from tests.harness.pg import reachable
from tests.harness.stack import wait_for


@contextlib.contextmanager
def local_registry(directory, host="127.0.0.1"):
    """Serves a registry stored under `directory`; yields its address (`localhost:PORT`), which
    Docker reaches over plain HTTP (a registry on 127.0.0.0/8 needs no TLS). None if not installed.
    host: another address to listen on (`HOST:PORT` yielded), e.g. a network's gateway for Docker
    engines in containers (their insecure-registries); two on one directory share the images."""
    binary = shutil.which("docker-registry")
    if not binary:
        yield None
        return
    port = free_port(host)
    config = directory / f"registry-{host}.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory}/data}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: {host}:{port}}}\n"
    )
    # Quiet: it logs every "blob unknown" a push checks for as an error.
    server = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: reachable(host, port), 30, what="the registry")
        yield f"localhost:{port}" if host == "127.0.0.1" else f"{host}:{port}"
    finally:
        server.terminate()
        server.wait()

"""Loopback ports for what the harness starts: stacks, nginx, PostgreSQL, pgbouncer, registries."""

import random
import socket
from pathlib import Path


def free_port(host="127.0.0.1"):
    """A port nothing listens on, chosen below the kernel's ephemeral range: a port the kernel
    handed out (bind to 0) may meanwhile become the source port of some outgoing connection, and a
    server started on it later (docker-proxy for a stack's second slot, say) fails to bind."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low} on {host}")

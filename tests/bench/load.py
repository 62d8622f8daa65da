"""Load and probes: wrk against loopback (bounded in time, stops by itself), container memory from
its cgroup, and a poll for the first 200."""

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness import run
from tests.harness.http import status

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
SECONDS = 8  # per wrk run: enough for a stable rate; the runs must fit the bench's time budget
CONCURRENCY = (1, 16, 64)
# What a target compares is measured this many times, in pairs (report.py): an odd number, so the
# median is one round's own ratio.
ROUNDS = 3


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx responses plus socket errors (connect, read, write, timeout)
    peak_mib: float | None = None  # the container's memory during the run, when sampled

    def __str__(self):
        text = f"{self.rps:,.0f} req/s · p50 {self.p50_ms:.1f} ms · p99 {self.p99_ms:.1f} ms"
        return text + f" · {self.errors} errors" + (f" · {self.peak_mib:.0f} MiB" if self.peak_mib else "")


def wrk(url, connections, *, headers=(), seconds=SECONDS, memory_of=None):
    """One wrk run; wrk needs a thread per connection at least, so c=1 gets one thread.
    memory_of: a container whose peak memory is sampled while the load runs."""
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    for header in headers:
        argv += ["-H", header]
    sampler = MemorySampler(memory_of) if memory_of else None
    try:
        out = run([*argv, "-s", WRK_SCRIPT, url], timeout=seconds + 60).stdout
    finally:
        peak = sampler.stop() if sampler else None
    data = json.loads(next(line for line in out.splitlines() if line.startswith("BENCH "))[6:])
    return Result(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["socket_errors"] + data["status_errors"],
        peak_mib=peak,
    )


def memory_mib(container):
    """The container's memory as `docker stats` counts it: usage minus inactive page cache.
    Read from its cgroup (v1 or v2) directly, which is cheap enough to sample during a load."""
    pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", container]).stdout.strip()
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    groups = {c: path for _, cs, path in (line.split(":", 2) for line in lines) for c in cs.split(",")}
    if "memory" in groups:  # cgroup v1
        group = Path("/sys/fs/cgroup/memory" + groups["memory"])
        usage, inactive = "memory.usage_in_bytes", "total_inactive_file"
    else:  # cgroup v2: one unified hierarchy
        group = Path("/sys/fs/cgroup" + groups[""])
        usage, inactive = "memory.current", "inactive_file"
    stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    return (int((group / usage).read_text()) - int(stat[inactive])) / 2**20


class MemorySampler:
    """The highest memory_mib() seen, twice a second, until stop()."""

    def __init__(self, container):
        self.container, self.peak = container, 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stopped.wait(0.5):
            self.peak = max(self.peak, memory_mib(self.container))

    def stop(self):
        self._stopped.set()
        self._thread.join()
        return self.peak


def first_200(nginx, *, since, timeout=180, **request):
    """Seconds from `since` (a time.monotonic()) until nginx answers / with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # nginx answers 502 while the app is down; a connection error is just as transient
        if status(nginx.https_port, "/", https=True, timeout=5, **request) == 200:
            return time.monotonic() - since
        time.sleep(0.1)
    raise TimeoutError(f"no 200 from nginx within {timeout}s")

"""`make bench`: measures the real stack and prints one Markdown table (latest: tests/bench/RESULTS.md).

The end-to-end harness brings the stack up: the project's compose file in a copy of the repository,
its nginx site on free loopback ports, a throwaway host PostgreSQL. All load is wrk against
127.0.0.1, bounded in time. Measurements, not tests: no number fails anything. Everything started
here is torn down whatever happens. The image builds on PYTHON_IMAGE, as the tests' do; where no
registry is reachable: `make bench PYTHON_IMAGE=$(scripts/build-offline-base.sh)`.
"""

import re
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench import deploy, images, setups
from tests.bench.load import CONCURRENCY, ROUNDS, first_200
from tests.bench.report import Table, busy, machine, per_round, render, spread
from tests.bench.web import connect_cost, costs, home_page, static
from tests.harness import Nginx, Stack, cleanup, host_database, site_env
from tests.harness.pgbouncer import Pgbouncer, allow_peer, socket_env

SEED = """
from app.models import Site
for i in range(30):
    Site.objects.create(
        name=f"Bench site {i}", url=f"https://bench-{i}.example.org",
        description="A listing for the benchmark, about as long as a real one. " * 3,
    ).approve()
"""


def fresh(stack, cluster):
    """Back to before a first start: no container, an empty database, empty static and data folders."""
    stack.down()
    cluster.psql(f'DROP DATABASE "{cluster.name}" WITH (FORCE)', database="postgres")
    cluster.psql(f'CREATE DATABASE "{cluster.name}" OWNER "{cluster.user}"', database="postgres")
    for folder in (stack.static, stack.dir / "data"):
        for path in folder.iterdir() if folder.exists() else ():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def seconds(values):
    """The median of per-round seconds, with their spread."""
    return f"{statistics.median(values):.1f} s" + spread(values, " s", digits=1)


def start(table, stack, nginx, cluster):
    """Seconds to the first 200 through nginx, in pairs round by round: a first start (empty database
    and static folder), polled while `up --wait` runs, then a restart (the same image and database).
    Returns both, per round, and a description of them for the target."""
    first, again, stopped, waited = [], [], [], []
    for round_ in range(ROUNDS):
        if round_:
            fresh(stack, cluster)
        since = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            up = pool.submit(stack.up)
            first.append(first_200(nginx, since=since))
            up.result()
        waited.append(time.monotonic() - since)
        since = time.monotonic()
        stack.compose("stop")  # stop + start: what `docker compose restart` does, timed in two parts
        stopped.append(time.monotonic() - since)
        stack.compose("start")
        again.append(first_200(nginx, since=since))
    stack.manage("shell", "-c", SEED)
    table.add(
        "Start to first 200 via nginx", "first start (empty database and static folder)", seconds(first)
    )
    table.add(
        "Start to first 200 via nginx", "restart", f"{seconds(again)}, of which stop {seconds(stopped)}"
    )
    since = time.monotonic()
    stack.manage("check_database")
    booted = time.monotonic() - since
    table.add("The entrypoint's database check (a Django boot)", "`docker exec`", f"{booted:.1f} s")
    median = statistics.median
    detail = f"{median(again):.1f} s vs {median(first):.1f} s, median"
    detail += f" (`up --wait` returned after {median(waited):.1f} s)"
    return first, again, detail


def measure(table, stack, nginx, cluster):
    image = images.measure(stack)
    table.add("Image build, cold (`--no-cache`)", "Debian offline base", seconds(image.cold_s))
    table.add("Image build after a code-only change", "Debian offline base", seconds(image.rebuild_s))
    table.add("Image size", "shipped (two stages)", f"{image.final_mb:.0f} MB")
    table.add(
        "Image size", "single stage (the same Dockerfile, stages merged)", f"{image.single_stage_mb:.0f} MB"
    )
    for setup in setups.IMAGES.values():
        setups.build(stack, setup)
    nginx.start()
    first, again, start_detail = start(table, stack, nginx, cluster)
    costs(table, stack)
    for setup in setups.DATABASE_PATHS:
        setups.use(stack, setup)
        connect_cost(table, stack, setup.label.split(", ", 1)[1])
    home = home_page(table, stack, nginx)
    peak = home[setups.SHIPPED, max(CONCURRENCY)].peak_mib
    table.add(
        f"Memory under load, c={max(CONCURRENCY)}", setups.SHIPPED.label, f"{peak:.0f} MiB (peak, median run)"
    )
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', nginx.request("/")[2]).group(1)
    static(table, stack, nginx, css)
    cold, rebuild = statistics.median(image.cold_s), statistics.median(image.rebuild_s)
    detail = f"{rebuild:.1f} s vs {cold:.0f} s, median"
    table.target(
        "code-only rebuild ≤ 0.1× cold build", detail, per_round(image.rebuild_s, image.cold_s), "≤", 0.1
    )
    table.target("restart ≤ 0.5× first start", start_detail, per_round(again, first), "≤", 0.5)
    detail = f"{image.final_mb:.0f} vs {image.single_stage_mb:.0f} MB"
    table.target("final image ≤ 0.4× single stage", detail, image.final_mb / image.single_stage_mb, "≤", 0.4)


def main():
    began = time.monotonic()
    info, table = machine(), Table()
    info["before the run"] = busy()
    root = Path(tempfile.mkdtemp(prefix="sitekit-bench-"))
    root.chmod(0o755)  # nginx's workers traverse it to the static folder
    # TCP + SCRAM from the stack's subnet, peer on the socket. The bench's stack runs as uid 33, not
    # an account of its own (make account): the map names www-data, which changes no measurement.
    cluster = allow_peer(host_database(), account="www-data")
    stack = nginx = bouncer = None
    try:
        bouncer = Pgbouncer(cluster, account="www-data").start()
        for path, env in {
            "socket": socket_env(cluster),
            "pgbouncer": socket_env(cluster, bouncer.port, "www-data"),
        }.items():
            setups.DB_PATHS[path] = {key: value or "" for key, value in env.items() if key != "DB_SOCKET_DIR"}
        stack = Stack(root, "sitekit-bench", image=setups.IMAGE)
        nginx = Nginx(root, stack)
        # wrk is a single client address, and nginx lets one address have 32 requests in progress
        # (limit_conn): c=64 would measure 429s. Here wrk stands for many visitors: lift that limit.
        site = nginx.site_file
        lifted, count = re.subn(r"(limit_conn \S+) 32;", r"\1 1024;", site.read_text())
        assert count == 1, "update tests/bench/__main__.py"
        site.write_text(lifted)
        stack.write_env(site_env(cluster, nginx.https_port, DB_SOCKET_DIR=str(cluster.socket_dir)))
        measure(table, stack, nginx, cluster)
        stack.down()  # the deploy's clone runs alone: its memory is its own
        deploy.measure(table, root, cluster)
        info["after the run (load includes its own)"] = busy()
    finally:
        if nginx:
            nginx.stop()
        if stack:
            stack.down()
        if bouncer:
            bouncer.stop()
        cluster.stop()
        cleanup()  # every image this run built
        shutil.rmtree(root, ignore_errors=True)
    info["bench took"] = f"{(time.monotonic() - began) / 60:.1f} min"
    print(render(info, table))


if __name__ == "__main__":
    main()

"""`make bench`'s swarm rows (swarm/, docs/scale-out.md): the site on a real Docker Swarm of three
nodes on this machine (tests/harness/swarm.py), measured: requests per second through the nodes'
nginx with 1, 2 and 3 nodes serving, and the time a rolling update takes per node. Every node is a
container on the same 2 CPUs as wrk, nginx and PostgreSQL, so more nodes cannot add capacity here:
the ratio shows what the extra nodes cost, not what they would gain on machines of their own.

    python -m tests.bench.swarm
"""

import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from tests.bench.load import ROUNDS, wrk
from tests.bench.report import Table, busy, machine, per_round, render, spread
from tests.harness import Stack, cleanup, workdir
from tests.harness.swarm import Swarm, release

VISITORS = (
    12  # connections in all, split over the serving nodes' nginx; the workers' bound answers 503 past it
)
MONITOR = 30  # update_config.monitor in swarm/stack.yml


def rate(swarm, count):
    """Requests per second of the home page, wrk against each serving node's nginx at once."""
    swarm.active(count)
    each = VISITORS // count
    with ThreadPoolExecutor(count) as pool:
        urls = [f"https://localhost:{nginx.https_port}/" for nginx in swarm.nginx[:count]]
        runs = [pool.submit(wrk, url, each) for url in urls]
        results = [job.result() for job in runs]
    return sum(result.rps for result in results), sum(result.errors for result in results)


def main():
    began = time.monotonic()
    info, table = machine(), Table()
    info["before the run"] = busy()
    root = workdir("sitekit-bench-swarm-")
    try:
        build = Stack(root, "sitekit-bench-swarm", own_image=True)
        build.compose("build")
        with Swarm(root) as swarm:
            first, second = (swarm.publish(release(build.image, name)) for name in ("swarm-a", "swarm-b"))
            swarm.write_env()
            swarm.deploy(first)
            # Rounds, every other one in reverse, so a busy moment of the machine is shared out.
            rates, errors = {1: [], 2: [], 3: []}, dict.fromkeys((1, 2, 3), 0)
            for round_ in range(ROUNDS):
                for count in (1, 2, 3) if round_ % 2 == 0 else (3, 2, 1):
                    rps, failed = rate(swarm, count)
                    rates[count].append(rps)
                    errors[count] += failed
            for count in (1, 2, 3):
                setup = f"{count} node{'s' * (count > 1)}, wrk c={VISITORS} in all over their nginx"
                result = f"{statistics.median(rates[count]):,.0f} req/s · {errors[count]} errors"
                table.add("Home page via the nodes' nginx", setup, result + spread(rates[count], " req/s", 0))
            for count in (2, 3):
                ratios = per_round(rates[count], rates[1])
                ratio = f"{statistics.median(ratios):.2f}×" + spread(ratios, "×")
                table.add(f"{count} nodes against 1", "one machine: the overhead, not a gain", ratio)
            started = time.monotonic()
            out = swarm.deploy(second).stdout
            took = time.monotonic() - started
            rollout = int(out.rsplit("the rollout took ", 1)[1].split()[0])
            table.add("`make swarm-deploy`, 3 nodes, no load", "prepare job + rollout", f"{took:.0f} s")
            per_node = (rollout - MONITOR) / 3  # Swarm watches the last node for MONITOR before it is done
            table.add("Rolling update per node", "stop-first, health-gated", f"{per_node:.0f} s")
        info["after the run"] = busy()
    finally:
        cleanup()
        shutil.rmtree(root, ignore_errors=True)
    info["bench took"] = f"{(time.monotonic() - began) / 60:.1f} min"
    print(render(info, table))


if __name__ == "__main__":
    main()

"""The load runs: the home page under every setup, and static files from nginx and from Django."""

import statistics
import time
from collections import defaultdict

from tests.bench import setups
from tests.bench.load import CONCURRENCY, memory_mib, wrk
from tests.harness.http import request

HOST = "Host: localhost"  # the bench's ALLOWED_HOSTS (site_env)
# Each setup is measured this many times, every other round in reverse order, and its best run is
# shown: on a shared machine a burst of other work only ever lowers a rate, so the best run is the
# least disturbed one, and reversing spreads slow drift evenly.
ROUNDS = 2
STATIC_CONCURRENCY = 64


PROFILE = """
import time
from django.db import connection
from django.test import Client

def ms(action, times=20):
    began = time.perf_counter()
    for _ in range(times):
        action()
    return (time.perf_counter() - began) / times * 1000

client = Client(HTTP_HOST="localhost")  # keeps its database connection open between requests
client.get("/", secure=True)
connect = ms(lambda: (connection.ensure_connection(), connection.close()))
print(connect, ms(lambda: client.get("/", secure=True)))
"""


def connect_cost(table, stack, label):
    """A new connection's cost on the database path the container runs with now."""
    connect = float(stack.manage("shell", "-c", PROFILE).stdout.splitlines()[-1].split()[0])
    table.add("PostgreSQL connect + close, in the container", label, f"{connect:.2f} ms")


def costs(table, stack):
    """Where a home page request's time goes, timed in the container, one request at a time: a new
    PostgreSQL connection (TCP, SCRAM authentication, a server process forked for it), which every
    request makes with CONN_MAX_AGE = 0, against Django rendering the page on an open connection."""
    last_line = stack.manage("shell", "-c", PROFILE).stdout.splitlines()[-1]  # after shell's own notes
    connect, render = map(float, last_line.split())
    table.add(
        "PostgreSQL connect + close, in the container",
        "TCP + SCRAM, psycopg2, as every request does",
        f"{connect:.2f} ms",
    )
    table.add(
        "Home page rendered on an open connection", "Django test client, in the container", f"{render:.1f} ms"
    )


def home_page(table, stack, nginx):
    """Every setup against the same seeded page at each concurrency; returns the best runs."""
    # localhost, not 127.0.0.1: wrk sends the URL's name as SNI, and nginx's catch-all server
    # refuses a TLS handshake for any name but the site's (/etc/hosts: localhost is 127.0.0.1).
    url, runs = f"https://localhost:{nginx.https_port}/", defaultdict(list)
    order = setups.WORKERS + setups.DATABASE_PATHS + setups.PROTOTYPES
    for round_ in range(ROUNDS):
        for setup in order if round_ % 2 == 0 else order[::-1]:
            setups.use(stack, setup)
            status, _, body = nginx.request("/")
            assert status == 200 and "Bench site 29" in body, f"{setup.label}: / answered {status}"
            if setup == setups.SHIPPED and not round_:
                time.sleep(3)  # all workers booted and idle
                table.add("Memory at idle", setup.label, f"{memory_mib(stack.container()):.0f} MiB")
            wrk(url, 16, headers=[HOST], seconds=2)  # warm-up: every worker has loaded its templates
            for c in CONCURRENCY:
                sample = stack.container() if c == max(CONCURRENCY) else None
                runs[setup, c].append(wrk(url, c, headers=[HOST], memory_of=sample))
    best = {key: max(results, key=lambda result: result.rps) for key, results in runs.items()}
    for setup in order:
        for c in CONCURRENCY:
            others = ", ".join(f"{run.rps:,.0f}" for run in runs[setup, c] if run is not best[setup, c])
            table.add(
                f"Home page via nginx, c={c}", setup.label, f"{best[setup, c]} (other rounds: {others})"
            )

    ratios = []
    for c in CONCURRENCY:
        alternative = max(setups.WORKERS[1:], key=lambda setup, c=c: best[setup, c].rps)
        ratios.append((best[setups.SHIPPED, c].rps / best[alternative, c].rps, c, alternative))
    ratio, c, alternative = min(ratios, key=lambda item: item[0])
    shipped, other = best[setups.SHIPPED, c].rps, best[alternative, c].rps
    detail = f"worst at c={c}: {shipped:,.0f} vs {other:,.0f} req/s ({alternative.label})"
    table.target("shipped worker ≥ 0.9× the best alternative, home page", detail, ratio, "≥", 0.9)
    database_paths(table, runs)
    return best


def database_paths(table, runs):
    """The database paths' targets, on the median of the rounds (issue 12)."""
    median = {key: statistics.median(run.rps for run in results) for key, results in runs.items()}
    tcp, (socket, pooler) = setups.SHIPPED, setups.DATABASE_PATHS
    pool = next(setup for setup in setups.PROTOTYPES if setup.label == "uvicorn + psycopg 3 connection pool")

    def compare(what, ours, theirs, concurrencies, bound):
        ratios = {c: median[ours, c] / median[theirs, c] for c in concurrencies}
        c = min(ratios, key=ratios.get)
        each = ", ".join(f"c={c}: {median[ours, c]:,.0f} vs {median[theirs, c]:,.0f}" for c in concurrencies)
        table.target(what, f"median req/s, {each}; worst at c={c}", ratios[c], "≥", bound)

    compare("socket + peer ≥ 1.2× TCP + SCRAM (shipped worker)", socket, tcp, (1, 16), 1.2)
    compare("pgbouncer ≥ 0.9× uvicorn + psycopg 3 pool", pooler, pool, CONCURRENCY, 0.9)
    wsgi = [setup for setup in setups.WORKERS + setups.PROTOTYPES if "app.wsgi:application" in setup.args]
    for c in CONCURRENCY:
        best = max(wsgi, key=lambda setup, c=c: median[setup, c])
        ratio = median[pooler, c] / median[best, c]
        detail = f"{median[pooler, c]:,.0f} vs {median[best, c]:,.0f} req/s ({best.label}), median"
        table.add(f"Shipped ASGI on pgbouncer / best WSGI, c={c}", detail, f"{ratio:.2f}×")
    c = max(CONCURRENCY)
    for setup in (socket, pooler):
        peak, today = max(r.peak_mib for r in runs[setup, c]), max(r.peak_mib for r in runs[tcp, c])
        table.target(
            f"memory at c={c} within 10% of today's: {setup.label}",
            f"{peak:.0f} vs {today:.0f} MiB (peak)",
            peak / today,
            "≤",
            1.1,
        )


def static(table, stack, nginx, css):
    """The hashed stylesheet from nginx and from Django (the container's port, no TLS: Django's
    best case), and the ceiling: nginx with a tiny file."""
    c, base = STATIC_CONCURRENCY, f"https://localhost:{nginx.https_port}"  # SNI: see home_page
    (stack.static / "tiny.txt").write_text("ok\n")
    table.add(f"Tiny static file via nginx, c={c}", "nginx (the ceiling)", wrk(f"{base}/static/tiny.txt", c))
    by_nginx = wrk(base + css, c)
    table.add(f"Hashed CSS, c={c}", "nginx, from the static folder", by_nginx)

    setups.use(stack, setups.DJANGO_STATIC)
    headers = [HOST, "X-Forwarded-Proto: https"]  # what nginx would send: no HTTPS redirect
    served = request(stack.port, css, headers=dict(header.split(": ") for header in headers))[0]
    assert served == 200, "Django does not serve the stylesheet"
    by_django = wrk(f"http://127.0.0.1:{stack.port}{css}", c, headers=headers, memory_of=stack.container())
    table.add(f"Hashed CSS, c={c}", f"{setups.DJANGO_STATIC.label}, container port", by_django)
    detail = f"{by_nginx.rps:,.0f} vs {by_django.rps:,.0f} req/s"
    table.target("nginx static ≥ 20× Django static", detail, by_nginx.rps / by_django.rps, "≥", 20)

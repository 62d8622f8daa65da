"""The load runs: the home page under every setup, and static files from nginx and from Django.

What a target compares runs in pairs, round by round (report.py): in each of ROUNDS rounds the
compared setups run side by side, every other round in reverse order, so slow drift on a shared
machine falls on both sides of a ratio alike. A row shows a setup's median run and every round's
rate: the spread is the noise."""

import statistics
import time
from collections import defaultdict

from tests.bench import setups
from tests.bench.load import CONCURRENCY, ROUNDS, memory_mib, wrk
from tests.bench.report import per_round
from tests.harness.http import request

HOST = "Host: localhost"  # the bench's ALLOWED_HOSTS (site_env)
STATIC_CONCURRENCY = 64
# The setups the home page's targets compare, in an order that keeps each target's setups next to
# each other: the alternatives and the shipped worker, which its database paths follow, and the
# pool prototype that pgbouncer is held against.
COMPARED = [setups.SYNC, setups.ASGI, setups.THREADS, setups.SHIPPED, *setups.DATABASE_PATHS, setups.POOL]


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


def schedule():
    """Which setup runs in which round, in order: the prototypes no target compares once, first,
    then COMPARED in every round, every other round reversed."""
    for setup in setups.PROTOTYPES:
        if setup not in COMPARED:
            yield 0, setup
    for round_ in range(ROUNDS):
        yield from ((round_, setup) for setup in (COMPARED if round_ % 2 == 0 else COMPARED[::-1]))


def median_run(results):
    """The run with the median rate (of an odd number of rounds: that round's own run)."""
    return sorted(results, key=lambda result: result.rps)[(len(results) - 1) // 2]


def rps(results):
    return [result.rps for result in results]


def home_page(table, stack, nginx):
    """Every setup against the same seeded page at each concurrency; returns each one's median run."""
    # localhost, not 127.0.0.1: wrk sends the URL's name as SNI, and nginx's catch-all server
    # refuses a TLS handshake for any name but the site's (/etc/hosts: localhost is 127.0.0.1).
    url, runs = f"https://localhost:{nginx.https_port}/", defaultdict(list)
    for round_, setup in schedule():
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
    for setup in setups.WORKERS + setups.DATABASE_PATHS + setups.PROTOTYPES:
        for c in CONCURRENCY:
            results = runs[setup, c]
            rounds = ", ".join(f"{rate:,.0f}" for rate in rps(results))
            text = f"{median_run(results)}" + (f" (rounds: {rounds})" if len(results) > 1 else "")
            table.add(f"Home page via nginx, c={c}", setup.label, text)

    median = {key: statistics.median(rps(results)) for key, results in runs.items()}
    # At each concurrency the shipped worker against the alternative with the best median there.
    pairs = {
        c: (setups.SHIPPED, max(setups.WORKERS[1:], key=lambda s, c=c: median[s, c])) for c in CONCURRENCY
    }
    what = "shipped worker ≥ 0.9× the best alternative, home page"
    paired(table, what, runs, median, pairs, 0.9, name_rival=True)
    database_paths(table, runs, median)
    return {key: median_run(results) for key, results in runs.items()}


def paired(table, what, runs, median, pairs, bound, *, name_rival=False):
    """A target on pairs {c: (ours, theirs)}: per-round ratios of req/s at each concurrency, held
    at the concurrency whose median ratio is the lowest. name_rival: theirs differs by c (a best-of)."""
    ratios, each = {}, []
    for c, (ours, theirs) in pairs.items():
        ratios[c] = per_round(rps(runs[ours, c]), rps(runs[theirs, c]))
        rival = f" ({theirs.label})" if name_rival else ""
        each.append(f"c={c}: {median[ours, c]:,.0f} vs {median[theirs, c]:,.0f}{rival}")
    worst = min(ratios, key=lambda c: statistics.median(ratios[c]))
    table.target(what, f"median req/s, {'; '.join(each)}; worst at c={worst}", ratios[worst], "≥", bound)


def database_paths(table, runs, median):
    """The database paths' targets (issue 12)."""
    tcp, socket, pooler = setups.SHIPPED, setups.SOCKET, setups.PGBOUNCER
    socket_vs_tcp = {c: (socket, tcp) for c in (1, 16)}
    paired(table, "socket + peer ≥ 1.2× TCP + SCRAM (shipped worker)", runs, median, socket_vs_tcp, 1.2)
    pooler_vs_pool = {c: (pooler, setups.POOL) for c in CONCURRENCY}
    paired(table, "pgbouncer ≥ 0.9× uvicorn + psycopg 3 pool", runs, median, pooler_vs_pool, 0.9)
    # Not a target: the best WSGI setup may be a prototype measured in one round only.
    wsgi = [setup for setup in setups.WORKERS + setups.PROTOTYPES if "app.wsgi:application" in setup.args]
    for c in CONCURRENCY:
        best = max(wsgi, key=lambda setup, c=c: median[setup, c])
        ratio = median[pooler, c] / median[best, c]
        detail = f"{median[pooler, c]:,.0f} vs {median[best, c]:,.0f} req/s ({best.label}), median"
        table.add(f"Shipped ASGI on pgbouncer / best WSGI, c={c}", detail, f"{ratio:.2f}×")
    c = max(CONCURRENCY)
    for setup in (socket, pooler):
        peaks, today = [r.peak_mib for r in runs[setup, c]], [r.peak_mib for r in runs[tcp, c]]
        table.target(
            f"memory at c={c} within 10% of today's: {setup.label}",
            f"{statistics.median(peaks):.0f} vs {statistics.median(today):.0f} MiB (median peak)",
            per_round(peaks, today),
            "≤",
            1.1,
        )


def static(table, stack, nginx, css):
    """The hashed stylesheet from nginx and from Django (the container's port, no TLS: Django's
    best case), in pairs round by round; and the ceiling: nginx with a tiny file."""
    c, base = STATIC_CONCURRENCY, f"https://localhost:{nginx.https_port}"  # SNI: see home_page
    (stack.static / "tiny.txt").write_text("ok\n")
    table.add(f"Tiny static file via nginx, c={c}", "nginx (the ceiling)", wrk(f"{base}/static/tiny.txt", c))

    setups.use(stack, setups.DJANGO_STATIC)  # nginx serves the folder whatever the app container runs
    headers = [HOST, "X-Forwarded-Proto: https"]  # what nginx would send: no HTTPS redirect
    served = request(stack.port, css, headers=dict(header.split(": ") for header in headers))[0]
    assert served == 200, "Django does not serve the stylesheet"
    runs = {"nginx": [], "django": []}
    measure = {
        "nginx": lambda: wrk(base + css, c),
        "django": lambda: wrk(
            f"http://127.0.0.1:{stack.port}{css}", c, headers=headers, memory_of=stack.container()
        ),
    }
    for round_ in range(ROUNDS):
        for server in ("nginx", "django") if round_ % 2 == 0 else ("django", "nginx"):
            runs[server].append(measure[server]())
    for server, setup in [
        ("nginx", "nginx, from the static folder"),
        ("django", f"{setups.DJANGO_STATIC.label}, container port"),
    ]:
        rounds = ", ".join(f"{rate:,.0f}" for rate in rps(runs[server]))
        table.add(f"Hashed CSS, c={c}", setup, f"{median_run(runs[server])} (rounds: {rounds})")
    by_nginx, by_django = statistics.median(rps(runs["nginx"])), statistics.median(rps(runs["django"]))
    detail = f"{by_nginx:,.0f} vs {by_django:,.0f} req/s, median"
    table.target(
        "nginx static ≥ 20× Django static",
        detail,
        per_round(rps(runs["nginx"]), rps(runs["django"])),
        "≥",
        20,
    )

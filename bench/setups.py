"""What serves the home page: the shipped gunicorn worker and the alternatives (a different command
for the same image), and prototypes of changes (a patch to a copy of the repository, built as an
image of its own). The deployment files themselves are never edited."""

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from tests.harness import BASE_IMAGE, record_build, run, tag, wait_for
from tests.harness.http import status

IMAGE = tag("sitekit-bench")  # the shipped code; patched images are tag("sitekit-bench-<name>")
GUNICORN = ("gunicorn", "--config", "docker/gunicorn.conf.py")  # the CMD; flags after it win
GTHREAD = ("--worker-class", "gthread", "--threads", "4", "app.wsgi:application")


@dataclass(frozen=True)
class Setup:
    label: str
    args: tuple = ()  # gunicorn's arguments after the config file; () keeps the image's CMD
    patch: Callable | None = None  # a prototype: edits a copy of the repository
    name: str = ""  # the patched image's tag suffix

    @property
    def image(self):
        return tag(f"sitekit-bench-{self.name}") if self.patch else IMAGE


def replace(path, old, new):
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update bench/setups.py"
    path.write_text(text.replace(old, new, 1))


def async_health(repo):
    """HealthCheckMiddleware able to run async too. Sync-only, it makes Django bounce every request
    from the event loop to a thread (for it) and back to the loop (for the async-capable rest)."""
    path = repo / "app/health.py"
    head, _ = path.read_text().split("class HealthCheckMiddleware:")
    path.write_text(head + ASYNC_HEALTH)


ASYNC_HEALTH = """
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.utils.decorators import sync_and_async_middleware


def answer(request):
    response = PROBES[request.path]()
    response["Cache-Control"] = "no-store"
    return response


def is_probe(request):
    return request.path in PROBES and request.method in ("GET", "HEAD")


@sync_and_async_middleware
def HealthCheckMiddleware(get_response):
    if iscoroutinefunction(get_response):
        async def middleware(request):  # /readyz queries the database: synchronous, in a thread
            return await (sync_to_async(answer)(request) if is_probe(request) else get_response(request))
    else:
        def middleware(request):
            return answer(request) if is_probe(request) else get_response(request)
    return middleware
"""


def uvloop(repo):
    """uvicorn's compiled event loop and HTTP parser (what uvicorn[standard] adds); its worker's
    "auto" settings pick them up when installed."""
    pip = "RUN pip install --require-hashes -r /tmp/requirements.txt"
    replace(repo / "Dockerfile", pip, f"{pip}\nRUN pip install uvloop==0.23.0 httptools==0.9.0")


def persistent_connections(repo):
    """One PostgreSQL connection per gthread thread, kept for a minute, instead of one per request
    (safe under WSGI threads, unlike ASGI's thread per request)."""
    settings = repo / "app/settings.py"
    replace(settings, '"CONN_MAX_AGE": 0,', '"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True,')


def connection_pool(repo):
    """psycopg 3 and its connection pool (Django >= 5.1): connections shared by a worker's requests,
    whatever thread runs them, so ASGI can reuse them too. Pure-Python psycopg: only libpq is needed."""
    pip = "RUN pip install --require-hashes -r /tmp/requirements.txt"
    replace(repo / "Dockerfile", pip, f"{pip}\nRUN pip install psycopg==3.3.9 psycopg-pool==3.3.3")
    replace(
        repo / "app/settings.py",
        '"OPTIONS": {"connect_timeout"',
        '"OPTIONS": {"pool": True, "connect_timeout"',
    )


def static_view(repo):
    """Django serving STATIC_ROOT itself, to compare with nginx serving the same file."""
    with open(repo / "app/urls.py", "a") as urls:
        urls.write(
            "\nfrom django.conf import settings\nfrom django.urls import re_path\n"
            "from django.views.static import serve\n"
            'urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve,'
            ' {"document_root": settings.STATIC_ROOT}))\n'
        )


SHIPPED = Setup("uvicorn worker (shipped)")
WORKERS = [  # the shipped worker and the alternatives: same image, same config file, same 3 workers
    SHIPPED,
    Setup("gunicorn sync", ("--worker-class", "sync", "app.wsgi:application")),
    Setup("gunicorn gthread, 4 threads", GTHREAD),
    Setup(
        "gunicorn asgi (native)", ("--worker-class", "asgi", "--asgi-lifespan", "off", "app.asgi:application")
    ),
]
PERSISTENT = dict(patch=persistent_connections, name="conn-max-age")
PROTOTYPES = [  # changes to the shipped files, measured before anyone makes them
    Setup("uvicorn + async-capable health middleware", patch=async_health, name="async-health"),
    Setup("uvicorn + uvloop, httptools", patch=uvloop, name="uvloop"),
    Setup("uvicorn + psycopg 3 connection pool", patch=connection_pool, name="pool"),
    # The same pool under gthread: ASGI against WSGI with the same driver.
    Setup("gthread + psycopg 3 connection pool", GTHREAD, patch=connection_pool, name="pool"),
    Setup("gthread + persistent DB connections", GTHREAD, **PERSISTENT),
    # max_requests 1000 recycles each worker every few seconds at these rates: a Django boot each time.
    Setup(
        "gthread + persistent DB connections + max_requests 10000",
        ("--max-requests", "10000", *GTHREAD),
        **PERSISTENT,
    ),
]
DJANGO_STATIC = Setup("uvicorn + django.views.static.serve", patch=static_view, name="static-view")
IMAGES = {setup.image: setup for setup in [*PROTOTYPES, DJANGO_STATIC] if setup.patch}  # to build


def docker_build(context, tag, dockerfile="Dockerfile"):
    """With BuildKit, as compose builds: the layers the compose build cached are reused."""
    args = ["-q", "-f", context / dockerfile, "-t", tag, "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}"]
    run(["docker", "build", *args, context], env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=900)
    record_build(tag)


def build(stack, setup):
    """A patched copy of the stack's repository, built as setup.image."""
    src = stack.dir.parent / f"build-{setup.name}"
    shutil.copytree(stack.dir, src)  # .dockerignore keeps its .env and static/ out of the build
    setup.patch(src)
    docker_build(src, setup.image)


def use(stack, setup):
    """Recreate the app container as `setup`, through a compose override file next to the project's
    docker-compose.yml (compose merges docker-compose.override.yml by itself)."""
    service = {"image": setup.image}
    if setup.args:
        service["command"] = [*GUNICORN, *setup.args]
    override = {"services": {"app": service}}
    (stack.dir / "docker-compose.override.yml").write_text(json.dumps(override))  # JSON is YAML
    stack.compose("up", "-d")  # not --wait: the health check's 5 s interval would be most of the wait
    healthy = f"{setup.label}: /healthz"  # connections are refused while it starts: status() says so
    wait_for(lambda: status(stack.port, timeout=5) == 200, timeout=120, interval=0.2, what=healthy)

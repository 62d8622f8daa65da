"""What serves the home page: the shipped gunicorn worker and the alternatives (a different command
for the same image), and prototypes of changes (tests/bench/prototypes/: a patch to a copy of the
repository and/or a layer on top of its image, built as an image of its own). The deployment
files themselves are never edited."""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.harness import BASE_IMAGE, record_build, run, tag, wait_for
from tests.harness.http import status

IMAGE = tag("sitekit-bench")  # the shipped code; a prototype's image is tag("sitekit-bench-<name>")
PROTOTYPE_FILES = Path(__file__).with_name("prototypes")
GUNICORN = ("gunicorn", "--config", "docker/gunicorn.conf.py")  # the CMD; flags after it win
GTHREAD = ("--worker-class", "gthread", "--threads", "4", "app.wsgi:application")


@dataclass(frozen=True)
class Setup:
    label: str
    args: tuple = ()  # gunicorn's arguments after the config file; () keeps the image's CMD
    prototype: str = ""  # prototypes/<prototype>.patch and/or .Dockerfile; "" = shipped code
    db: str = ""  # a key of DB_PATHS; "" = the stack's .env: TCP + SCRAM to the host's docker0 address

    @property
    def image(self):
        return tag(f"sitekit-bench-{self.prototype}") if self.prototype else IMAGE


SHIPPED = Setup("uvicorn worker (shipped)")
SYNC = Setup("gunicorn sync", ("--worker-class", "sync", "app.wsgi:application"))
THREADS = Setup("gunicorn gthread, 4 threads", GTHREAD)
ASGI = Setup(
    "gunicorn asgi (native)", ("--worker-class", "asgi", "--asgi-lifespan", "off", "app.asgi:application")
)
# The shipped worker and the alternatives: same image, same config file, same 3 workers.
WORKERS = [SHIPPED, SYNC, THREADS, ASGI]
POOL = Setup("uvicorn + psycopg 3 connection pool", prototype="pool")  # what pgbouncer is held against
PROTOTYPES = [  # changes to the shipped files, measured before anyone makes them
    Setup("uvicorn + async-capable health middleware", prototype="async-health"),
    Setup("uvicorn + uvloop, httptools", prototype="uvloop"),
    POOL,
    # The same pool under gthread: ASGI against WSGI with the same driver.
    Setup("gthread + psycopg 3 connection pool", GTHREAD, prototype="pool"),
    Setup("gthread + persistent DB connections", GTHREAD, prototype="conn-max-age"),
    # The old max_requests, 1000: at these rates a recycle every few seconds, a Django boot each.
    Setup(
        "gthread + persistent DB connections + max_requests 1000",
        ("--max-requests", "1000", *GTHREAD),
        prototype="conn-max-age",
    ),
]
# The shipped stack on the VPS guide's database paths (README): the same image and command, only
# DB_* differ. DB_PATHS is filled once the database and pgbouncer run (__main__.py).
DB_PATHS = {}
SOCKET = Setup("uvicorn worker (shipped), unix socket + peer", db="socket")
PGBOUNCER = Setup("uvicorn worker (shipped), pgbouncer (socket, peer, session pooling)", db="pgbouncer")
DATABASE_PATHS = [SOCKET, PGBOUNCER]
DJANGO_STATIC = Setup("uvicorn + django.views.static.serve", prototype="static-view")
IMAGES = {setup.image: setup for setup in [*PROTOTYPES, DJANGO_STATIC]}  # to build


def docker_build(context, image, dockerfile="Dockerfile", **build_args):
    """With BuildKit, as compose builds: the layers the compose build cached are reused."""
    args = ["-q", "-f", Path(context) / dockerfile, "-t", image]
    for name, value in {"PYTHON_IMAGE": BASE_IMAGE, **build_args}.items():
        args += ["--build-arg", f"{name}={value}"]
    run(["docker", "build", *args, context], env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=900)
    record_build(image)  # removed with the session's other images


def build(stack, setup):
    """setup.image: the stack's code with <name>.patch applied, built as the shipped image is, then
    <name>.Dockerfile's layer on top of it (on the shipped image when there is no patch)."""
    name, base = setup.prototype, IMAGE
    patch, layer = PROTOTYPE_FILES / f"{name}.patch", PROTOTYPE_FILES / f"{name}.Dockerfile"
    assert patch.exists() or layer.exists(), f"{PROTOTYPE_FILES} has no {name}.patch or {name}.Dockerfile"
    if patch.exists():
        src = stack.dir.parent / f"build-{name}"
        shutil.copytree(stack.dir, src)  # .dockerignore keeps its .env and static/ out of the build
        applied = run(["patch", "-p1", "--forward", "-i", patch], cwd=src, check=False)
        assert applied.returncode == 0, f"{patch} no longer applies: refresh it\n{applied.stdout}"
        docker_build(src, setup.image)
        base = setup.image
    if layer.exists():
        docker_build(PROTOTYPE_FILES, setup.image, layer.name, BASE=base)


def use(stack, setup):
    """Recreate the app container as `setup`, through a compose override file next to the project's
    docker-compose.yml (compose merges docker-compose.override.yml by itself)."""
    service = {"image": setup.image}
    if setup.args:
        service["command"] = [*GUNICORN, *setup.args]
    if setup.db:
        service["environment"] = DB_PATHS[setup.db]  # over .env's DB_* (the socket dir is mounted)
    override = {"services": {"app": service}}
    (stack.dir / "docker-compose.override.yml").write_text(json.dumps(override))  # JSON is YAML
    stack.compose("up", "-d")  # not --wait: the health check's 5 s interval would be most of the wait
    healthy = f"{setup.label}: /healthz"  # connections are refused while it starts: status() says so
    wait_for(lambda: status(stack.port, timeout=5) == 200, timeout=120, interval=0.2, what=healthy)

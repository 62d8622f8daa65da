"""The steps the backup tests share: make in the clone, an error's one line, a row added by the
site's own code, the page through nginx, the newest dump."""

import os

from tests.harness import run


def make(app, target, *args, user=None, **env):
    """`make <target>` in the clone, as its operator runs it (root), or as another uid."""
    argv = ["make", "-s", target, *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return run(argv, cwd=app.dir, env={**os.environ, **env}, check=False)


def one_line_error(result):
    """The script's own stderr (make's "*** Error" line aside): exactly one line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(lines) == 1 and "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return lines[0]


def add(app, name):
    """An approved site, written by the site's own code in its container."""
    url = f"https://{name.lower().replace(' ', '-')}.example.org"
    code = f"from app.models import Site; Site.objects.create(name={name!r}, url={url!r}, description='')"
    app.manage("shell", "-c", code + ".approve()")


def served(app):
    status, _, body = app.nginx.request("/")
    return body if status == 200 else None


def newest(app):
    return sorted(app.backups.glob("*.dump"))[-1]

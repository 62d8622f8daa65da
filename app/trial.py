"""The trial setup: what the site runs on when no database is configured (no DB_NAME).

A first `make up` on a fresh machine needs no .env: SQLite and a generated SECRET_KEY live in
DATA_DIR (./data, bind-mounted), the site answers on localhost only, over plain HTTP. A production
configuration names its PostgreSQL database; settings refuse HTTPS=true without one, so a forgotten
DB_NAME cannot quietly put a public site on the trial's SQLite.
"""

import os
import secrets
import sys

from app.env import ConfigError

# What turns the trial into production, for the start-up banner and the docs (.env.example).
PRODUCTION_LINES = (
    "DB_NAME, DB_USER, DB_HOST                PostgreSQL on the host (README: Deploying to a VPS)",
    "ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS      the site's host names, e.g. example.com",
    "HTTPS=true                               once nginx serves it with a certificate",
)


def data_dir_ready(path):
    """Create DATA_DIR if needed, or stop with one line saying how to make it writable."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid == os.getuid():
            path.chmod(0o700)  # admin password hashes, sessions and the key: for the site's user alone
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"DATA_DIR {path} is not writable by uid {os.getuid()} ({exc.strerror}): it holds the "
            "trial's SQLite database; on the host run `make data` (or sudo mkdir -p data && "
            "sudo chown 33:33 data), or set DB_NAME for PostgreSQL"
        ) from None
    return path


def sqlite_database(path):
    """The trial's SQLite file, created owner-only (SQLite gives its journal the file's mode)."""
    database = data_dir_ready(path) / "db.sqlite3"
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT, 0o600)  # an empty file is a new database
        try:
            os.fchmod(fd, 0o600)  # one made by an earlier version was world-readable (0644)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"DATA_DIR: cannot make {database} private to uid {os.getuid()} ({exc.strerror})"
        ) from None
    return database


def secret_key(path):
    """The trial's SECRET_KEY: generated once, then read from DATA_DIR, so sessions survive a
    restart. Written under a temporary name and linked into place, so two processes starting at
    once agree on one key."""
    key_file = path / "secret_key"
    if not key_file.exists():
        data_dir_ready(path)
        draft = path / f".secret_key-{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, key_file)  # fails if another process won the race: its key stands
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return key_file.read_text().strip()


def banner(port="6868"):
    """Printed once per start by gunicorn (docker/gunicorn.conf.py), never per worker or command."""
    rule = "=" * 100
    lines = [
        rule,
        "TRIAL SETUP: no DB_NAME, so the site runs on SQLite in ./data with a generated SECRET_KEY,",
        f"over plain HTTP for this machine only (http://127.0.0.1:{port}/). Fine for a look around,",
        "not for production. For production, run `make env` and set these lines in .env:",
        *(f"    {line}" for line in PRODUCTION_LINES),
        "then `make up` again.",
        rule,
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)

"""Can the database be reached? One line per attempt, and an exit status the entrypoint acts on:
0 reachable, 1 unreachable (worth retrying), 2 misconfigured (retrying cannot help).

--wait retries DB_WAIT_ATTEMPTS times, DB_WAIT_SECONDS apart: on boot the host's PostgreSQL may
still be starting. --key prints, on the connection that answered, the preparation key: what names
the entrypoint's "already prepared" marker (app/management/commands/mark_prepared.py)."""

import hashlib
import os
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, OperationalError, connection

from app.env import ConfigError, env_int

# libpq's (and pgbouncer's) words for failures that waiting will not fix.
PERMANENT = (
    "authentication failed",  # password, scram or peer
    "does not exist",
    "no pg_hba.conf entry",
    "role ",
    "login rejected",  # pgbouncer: a user it does not know, or a failed peer check
    "no such database",  # pgbouncer: not in its [databases]
)
# What to check, for the failures a first setup of the socket path runs into.
HINTS = {
    "Peer authentication failed": (
        f"the container runs as uid {os.getuid()} (APP_UID); pg_ident.conf must map the host's name for it "
        "(the site's own account, `sudo make account`) to DB_USER, on a pg_hba.conf line above Debian's "
        "`local all all peer`: see postgresql/"
    ),
    "login rejected": "through pgbouncer, DB_USER must be the site's account name: see pgbouncer/pg_hba.conf",
    "No such file or directory": (
        "no server socket in the mounted DB_SOCKET_DIR: is PostgreSQL, or pgbouncer on 6432, running?"
    ),
}


def describe(db):
    """Where the site looks for its database, as the operator would check it."""
    host, port = db["HOST"] or "localhost", db["PORT"] or 5432
    where = f"socket {host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"
    user = f" as user {db['USER']!r}" if db["USER"] else ""
    return f"PostgreSQL database {db['NAME']!r}{user} via {where}"


def build_id():
    """This image's identity: the hash of its files (the Dockerfile's .build-id), and the BUILD_ID
    it was built with, if any."""
    try:
        content = (settings.BASE_DIR / ".build-id").read_text(encoding="ascii").split()[0]
    except (OSError, IndexError):
        content = "no-build-id"  # outside the image
    return f"{content} {os.environ.get('APP_BUILD_ID', '')}".strip()


def database_state(conn):
    """The database's migration state: which database (PostgreSQL: its oid, new when it is dropped
    and recreated) and every row of django_migrations; an empty database has a state of its own."""
    with conn.cursor() as cursor:
        identity = "sqlite"
        if conn.vendor == "postgresql":
            cursor.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
            identity = f"postgresql oid {cursor.fetchone()[0]}"
        if "django_migrations" not in conn.introspection.table_names(cursor):
            return f"{identity}: empty"
        cursor.execute("SELECT app, name, applied FROM django_migrations ORDER BY id")
        rows = "\n".join(f"{app} {name} {applied}" for app, name, applied in cursor.fetchall())
    return f"{identity}: " + hashlib.sha256(rows.encode()).hexdigest()


def preparation_key(conn):
    """The marker's name: this build and this database state (both prepare steps depend on both)."""
    return hashlib.sha256(f"{build_id()}\n{database_state(conn)}".encode()).hexdigest()[:32]


class Command(BaseCommand):
    help = "Check that the database accepts a connection; exit 1 if unreachable, 2 if misconfigured."

    def add_arguments(self, parser):
        parser.add_argument("--wait", action="store_true", help="retry (DB_WAIT_ATTEMPTS, DB_WAIT_SECONDS)")
        parser.add_argument("--key", action="store_true", help="print the preparation key on stdout")

    def handle(self, *args, wait=False, key=False, **options):
        try:
            attempts = env_int("DB_WAIT_ATTEMPTS", 30, minimum=1) if wait else 1
            pause = env_int("DB_WAIT_SECONDS", 2, minimum=0)
        except ConfigError as exc:
            self.stderr.write(f"configuration error: {exc}")
            sys.exit(2)
        db = connection.settings_dict
        if connection.vendor == "postgresql":
            target = describe(db)
        else:
            target = f"{connection.display_name} database {db['NAME']}"
        for attempt in range(1, attempts + 1):
            try:
                connection.ensure_connection()
                # With --key, stdout carries only the key, for the entrypoint to read.
                (self.stderr if key else self.stdout).write(f"{target} is reachable")
                if key:
                    self.stdout.write(preparation_key(connection))
                return
            except OperationalError as exc:
                if connection.connection is not None:  # connected: reading the state failed
                    raise CommandError(f"cannot read the migration state of {target}: {exc}") from None
                reason = (str(exc).strip().splitlines() or ["no reason given"])[0]
            except DatabaseError as exc:
                raise CommandError(f"cannot read the migration state of {target}: {exc}") from None
            finally:
                connection.close()
            permanent = any(word in reason for word in PERMANENT)
            reason += "".join(f" (check: {hint})" for words, hint in HINTS.items() if words in reason)
            if permanent:
                self.stderr.write(f"error: {target} refused the connection: {reason}")
                sys.exit(2)
            prefix = f"attempt {attempt}/{attempts}: " if wait else ""
            self.stderr.write(f"{prefix}{target} is unreachable: {reason}")
            if attempt < attempts:
                time.sleep(pause)
        if wait:
            self.stderr.write(
                # No "will try again": true of a container's start (its restart policy), not of a
                # deploy's one-off prepare, which stops there.
                f"error: database still unreachable after {attempts} attempts; giving up"
            )
        sys.exit(1)

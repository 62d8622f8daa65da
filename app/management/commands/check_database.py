"""Can the database be reached? One line of output, and an exit status the entrypoint acts on:
0 reachable, 1 unreachable (worth retrying), 2 misconfigured (retrying cannot help)."""

import sys

from django.core.management.base import BaseCommand
from django.db import OperationalError, connection

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
        "the container runs as uid 33, which the host calls www-data; pg_ident.conf must map "
        "www-data to DB_USER, on a pg_hba.conf line above Debian's `local all all peer`: see postgresql/"
    ),
    "login rejected": "through pgbouncer, DB_USER must be www-data: see pgbouncer/pg_hba.conf",
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


class Command(BaseCommand):
    help = "Check that the database accepts a connection; exit 1 if unreachable, 2 if misconfigured."

    def add_arguments(self, parser):
        parser.add_argument("--attempt", default="", help="shown in the log line, e.g. 3/30")

    def handle(self, *args, attempt="", **options):
        db = connection.settings_dict
        if connection.vendor == "postgresql":
            target = describe(db)
        else:
            target = f"{connection.display_name} database {db['NAME']}"
        try:
            connection.ensure_connection()
        except OperationalError as exc:
            reason = (str(exc).strip().splitlines() or ["no reason given"])[0]
            permanent = any(word in reason for word in PERMANENT)
            reason += "".join(f" (check: {hint})" for words, hint in HINTS.items() if words in reason)
            if permanent:
                self.stderr.write(f"error: {target} refused the connection: {reason}")
                sys.exit(2)
            prefix = f"attempt {attempt}: " if attempt else ""
            self.stderr.write(f"{prefix}{target} is unreachable: {reason}")
            sys.exit(1)
        finally:
            connection.close()
        self.stdout.write(f"{target} is reachable")

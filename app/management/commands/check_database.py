"""Can the database be reached? One line of output, and an exit status the entrypoint acts on:
0 reachable, 1 unreachable (worth retrying), 2 misconfigured (retrying cannot help)."""

import sys

from django.core.management.base import BaseCommand
from django.db import OperationalError, connection

# libpq's words for failures that waiting will not fix.
PERMANENT = ("password authentication failed", "does not exist", "no pg_hba.conf entry", "role ")


class Command(BaseCommand):
    help = "Check that the database accepts a connection; exit 1 if unreachable, 2 if misconfigured."

    def add_arguments(self, parser):
        parser.add_argument("--attempt", default="", help="shown in the log line, e.g. 3/30")

    def handle(self, *args, attempt="", **options):
        db = connection.settings_dict
        if connection.vendor == "postgresql":
            target = f"PostgreSQL database {db['NAME']!r} on {db['HOST'] or 'localhost'}:{db['PORT']}"
        else:
            target = f"{connection.display_name} database {db['NAME']}"
        try:
            connection.ensure_connection()
        except OperationalError as exc:
            reason = (str(exc).strip().splitlines() or ["no reason given"])[0]
            if any(word in reason for word in PERMANENT):
                self.stderr.write(f"error: {target} refused the connection: {reason}")
                sys.exit(2)
            prefix = f"attempt {attempt}: " if attempt else ""
            self.stderr.write(f"{prefix}{target} is unreachable: {reason}")
            sys.exit(1)
        finally:
            connection.close()
        self.stdout.write(f"{target} is reachable")

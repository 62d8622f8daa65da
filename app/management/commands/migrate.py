"""Django's migrate, serialised across processes with a PostgreSQL advisory lock.

Two containers starting at once against one database would otherwise both apply the same
migrations and one would die on "relation already exists". The lock makes the second wait for the
first; it then finds nothing left to do. Every option of the stock command works unchanged.
"""

from django.core.management.commands import migrate
from django.db import connections

# Any constant shared by all processes of this site; "sitekit" in ASCII.
MIGRATE_LOCK_ID = 0x736974656B6974


class Command(migrate.Command):
    def handle(self, *args, **options):
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            return super().handle(*args, **options)
        # A session-level lock: it spans migrate's own transactions and is released on disconnect
        # even if this process dies (through pgbouncer too: session pooling, then DISCARD ALL).
        # No statement_timeout for this session (app/database.py sets one on every connection):
        # waiting for another container's migrate, or rewriting a big table, may take longer.
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_ID])
        try:
            return super().handle(*args, **options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK_ID])

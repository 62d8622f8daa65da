"""Every request's database time is bounded: PostgreSQL cancels a statement that runs longer than
DB_STATEMENT_TIMEOUT, and the visitor gets a page that says so instead of a hang.

The timeout is SET on each new connection (one round trip), not passed as libpq's `options`:
pgbouncer refuses that startup parameter, and `SET` works the same on every path (socket, TCP,
pgbouncer in session mode, whose DISCARD ALL resets it before the next client gets the connection).
(`ALTER ROLE sitekit SET statement_timeout` would cost no round trip, but lives in the database,
where a deployment's .env cannot see or change it.)
"""

import logging

from django.conf import settings
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from django.http import HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout
# A connection refused for want of a free slot (PostgreSQL's 53300 and pgbouncer's max_client_conn):
# psycopg2 gives no SQLSTATE for a failed connect, so the messages tell it from an outage.
NO_FREE_SLOT = (
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for",  # role or database: its CONNECTION LIMIT
    "no more connections allowed",
)


def busy(exception):
    """True when the database was reached but had no connection slot left: busy, not unreachable."""
    return any(message in str(exception) for message in NO_FREE_SLOT)


@receiver(connection_created, dispatch_uid="sitekit-statement-timeout")
def set_statement_timeout(sender, connection, **kwargs):
    """Runs once per new connection (this module is imported by app/apps.py)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", [settings.DB_STATEMENT_TIMEOUT * 1000])  # ms


class StatementTimeoutMiddleware:
    """A view whose query PostgreSQL cancelled answers 503 with an explanation, not a bare 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError):
            return None
        if getattr(exception.__cause__, "pgcode", None) != QUERY_CANCELED:
            return None
        seconds = settings.DB_STATEMENT_TIMEOUT
        logger.warning(
            "%s %s: query cancelled after %s s (DB_STATEMENT_TIMEOUT)",
            request.method,
            escaped(request.path),
            seconds,
        )
        return unavailable("timeout.html", {"seconds": seconds})


class DatabaseUnreachableMiddleware(StatementTimeoutMiddleware):  # its plumbing, not its check
    """A request that could not reach the database (refused, gone away) or found no free connection
    slot in it (busy) answers 503 with an explanation: logged as one line, not mailed (django.request's
    mail handler skips 503s, app/mail.py), so an outage is one problem, not a mail per request."""

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError):
            return None
        link = connection.connection  # None: the connection was never made; closed: it was lost
        if link is not None and not getattr(link, "closed", False):
            return None  # a live connection: a query's own error, left to the 500 page
        first_line = (str(exception).strip().splitlines() or [type(exception).__name__])[0]
        state = "busy" if busy(exception) else "unreachable"
        logger.error("%s %s: database %s: %s", request.method, escaped(request.path), state, first_line)
        return unavailable(f"{state}.html", {})


def escaped(path):
    return path.encode("unicode_escape").decode("ascii")  # a %0A must not start a log line of its own


def unavailable(template, context):
    # No request context: like 500.html, this page must not need the database it just lost.
    page = render_to_string(template, context)
    return HttpResponse(page, status=503, headers={"Retry-After": "30", "Cache-Control": "no-store"})

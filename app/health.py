"""Liveness and readiness probes, answered before any other middleware.

/healthz: the process serves requests; touches nothing else (Docker's HEALTHCHECK uses it, so a
database outage does not get a healthy container restarted).
/readyz: the process can do real work; one cheap query, 503 with a short JSON reason when the
database cannot be reached ("database unreachable") or has no connection slot free ("database
busy"). Only for the machine itself (deploys, monitoring on the host): a request that came through
nginx, which always sets X-Forwarded-For, is routed like any other page (host check, then 404), so
the public cannot make the site open database connections on demand.
"""

import logging

from django.db import Error as DatabaseError
from django.db import connection
from django.http import JsonResponse

from app.database import busy

logger = logging.getLogger(__name__)


def liveness():
    return JsonResponse({"status": "ok"})


def readiness():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = "database busy" if busy(exc) else "database unreachable"  # no free slot, or down
        logger.warning("readiness check failed: %s: %s", reason, first_line)
        return JsonResponse({"status": "unavailable", "reason": reason}, status=503)
    return JsonResponse({"status": "ok"})


PROBES = {"/healthz": liveness, "/readyz": readiness}


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path)
        if probe is readiness and "HTTP_X_FORWARDED_FOR" in request.META:
            probe = None  # proxied: from the internet, not from this machine
        if probe is not None and request.method in ("GET", "HEAD"):
            response = probe()
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)

"""The one HTTP client of the harness: a single request to a port on this machine, redirects not
followed, TLS certificates not checked (the tests' own self-signed ones). Standard library only."""

import http.client
import ssl


def request(
    port, path="/", *, method="GET", body=None, headers=None, https=False, host="localhost", timeout=30
):
    """Returns (status, headers, text). Connection errors propagate (see status())."""
    if https:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def status(port, path="/healthz", **options):
    """The status code, or the connection error's name ("ConnectionRefusedError", ...): for polling
    and for load, where a refused connection is an outcome, not a failure of the test."""
    try:
        return request(port, path, **options)[0]
    except OSError as exc:
        return type(exc).__name__

"""The one HTTP client of the harness: a single request to a port on this machine, redirects not
followed, TLS certificates not checked (the tests' own self-signed ones), and a Browser on top of it
for cookies and forms. Standard library only."""

import http.client
import random
import re
import socket
import ssl
from http.cookies import SimpleCookie
from urllib.parse import urlencode


def request(
    port,
    path="/",
    *,
    method="GET",
    body=None,
    headers=None,
    https=False,
    host="localhost",
    timeout=30,
    source="127.0.0.1",
):
    """Returns (status, headers, text). Connection errors propagate (see status()).
    host is the Host header and, over HTTPS, the SNI name, as a browser sends both (nginx refuses
    a handshake without a name it serves). source is the client's address: any of 127.0.0.0/8 is
    this machine, and nginx's per-client limits count each as a client of its own."""
    if https:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    # Connect to 127.0.0.1 whatever the host name (the name still goes into SNI and Host).
    conn._create_connection = lambda *_: socket.create_connection(("127.0.0.1", port), timeout, (source, 0))
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def fresh_client():
    """A loopback address of its own for a test's requests (request(source=...)): nginx limits POSTs
    and requests in progress per client address, so a test that posts more than a few forms, or
    holds connections open, must not spend 127.0.0.1's allowance, which the other tests share."""
    return f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def status(port, path="/healthz", **options):
    """The status code, or the connection error's name ("ConnectionRefusedError", ...): for polling
    and for load, where a refused connection is an outcome, not a failure of the test."""
    try:
        return request(port, path, **options)[0]
    except OSError as exc:
        return type(exc).__name__


class Browser:
    """Requests through nginx over HTTPS as a browser makes them: a cookie jar, and Origin and
    Referer headers naming the page a form was posted from. (Not a real browser: that is selenium's.)"""

    def __init__(self, nginx, source="127.0.0.1"):
        self.nginx, self.source = nginx, source  # source: the client's address (see request())
        self.origin = f"https://{nginx.host}:{nginx.https_port}"
        self.cookies = SimpleCookie()  # every cookie received, with its attributes

    def request(self, path, *, method="GET", body=None, headers=None):
        jar = "; ".join(f"{name}={morsel.value}" for name, morsel in self.cookies.items())
        headers = {**({"Cookie": jar} if jar else {}), **(headers or {})}
        status, response_headers, text = self.nginx.request(
            path, method=method, body=body, headers=headers, source=self.source
        )
        for header in response_headers.get_all("Set-Cookie") or []:
            self.cookies.load(header)
        return status, response_headers, text

    def form_headers(self, path):
        """The headers of a form post made from the page at path, with the CSRF cookie."""
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.origin,
            "Referer": self.origin + path,
            "Cookie": f"csrftoken={self.cookies['csrftoken'].value}",
        }

    def csrf_token(self, path):
        """Open the form at path, as a browser does before posting it; returns its CSRF token."""
        status, _, text = self.request(path)
        assert status == 200, text
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)

    def post_form(self, path, fields):
        body = urlencode({"csrfmiddlewaretoken": self.csrf_token(path), **fields})
        return self.request(path, method="POST", body=body, headers=self.form_headers(path))

    def log_in(self, username, password):
        """The admin's login form; asserts it let the user in."""
        fields = {"username": username, "password": password, "next": "/admin/"}
        status, headers, text = self.post_form("/admin/login/", fields)
        assert (status, headers["Location"]) == (302, "/admin/"), text


def post(browser, path, token, fields):
    """A form post with a CSRF token fetched once: the limits count posts, not page views."""
    body = urlencode({"csrfmiddlewaretoken": token, **fields})
    return browser.request(path, method="POST", body=body, headers=browser.form_headers(path))[0]


def policy(headers):
    """The one Content-Security-Policy header, as {directive: [values]}."""
    values = headers.get_all("Content-Security-Policy") or []
    assert len(values) == 1, f"expected one Content-Security-Policy header, got {values}"
    return {part.split()[0]: part.split()[1:] for part in values[0].split(";") if part.strip()}

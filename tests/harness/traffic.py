"""Visitors during a deploy, for the deploy tests and `make bench`: GETs of / and form
submissions through nginx over HTTPS, from threads, with every answer kept (status or connection
error, and the X-Revision that served it), and the submissions checked against PostgreSQL."""

import functools
import http.client
import itertools
import random
import re
import secrets
import socket
import ssl
import threading
import time
from urllib.parse import urlencode

from tests.harness.http import Browser, fresh_client

# A reused connection the server closed while it was idle: the request got no answer at all.
CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


class KeepAlive:
    """A browser's connection: one HTTPS connection to nginx reused request after request. nginx
    closes an idle one when it reloads (as HTTP allows at any time); a request that finds its reused
    connection closed without any answer is sent again once on a new one, as browsers and HTTP
    libraries do (RFC 9112, 9.3.1). `retries` counts those."""

    def __init__(self, nginx, source):
        self.nginx, self.source, self.conn, self.served, self.retries = nginx, source, None, 0, 0

    def _connect(self):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
        nginx = self.nginx
        conn = http.client.HTTPSConnection(nginx.host, nginx.https_port, timeout=30, context=context)
        address = ("127.0.0.1", nginx.https_port)
        conn._create_connection = lambda *_: socket.create_connection(address, 30, (self.source, 0))
        return conn

    def request(self, path):
        """(status, headers, text) of a GET; connection errors propagate (after the one retry)."""
        if self.conn is None:
            self.conn, self.served = self._connect(), 0
        try:
            self.conn.request("GET", path, headers={"Host": self.nginx.host})
            response = self.conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except CLOSED_WHILE_IDLE:
            self.conn.close()
            self.conn, reused = None, self.served > 0
            if not reused:
                raise  # a new connection that fails is a failure, not the idle-close race
            self.retries += 1
            return self.request(path)
        except OSError:
            self.conn.close()
            self.conn = None
            raise
        self.served += 1
        if response.will_close:
            self.conn.close()
            self.conn = None
        return response.status, response.headers, text


class Load:
    """GETs of / from two threads on a new connection each, from two more on kept-alive connections
    with pauses between (a connection idle at a switch), and form submissions from `writers` more, through
    nginx over HTTPS, until stopped. Every answer is kept: (kind, status or connection error,
    revision, time)."""

    def __init__(self, app, *, writers=1):
        """app: a Stack with .nginx in front of it, and .cluster and .database it stores rows in.
        writers: threads submitting forms (each submission from an address of its own)."""
        self.app, self.tag = app, f"deploy-{secrets.token_hex(4)}"
        self.answers, self.posted, self.running = [], [], True
        self.numbers = itertools.count()  # each submission's URL is unique across writer threads
        self.kept_alive = [KeepAlive(app.nginx, fresh_client()) for _ in range(2)]
        self.threads = [threading.Thread(target=self.reader) for _ in range(2)]
        self.threads += [threading.Thread(target=self.browser, args=(conn,)) for conn in self.kept_alive]
        self.threads += [threading.Thread(target=self.writer) for _ in range(writers)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        time.sleep(1)  # load before the switch, too
        return self

    def __exit__(self, *exc):
        deadline = time.monotonic() + 30
        time.sleep(1)  # load after the switch, too, and at least 3 submissions in all
        while len(self.posted) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.running = False
        for thread in self.threads:
            thread.join()

    def note(self, kind, call):
        """Make one request; keep its answer. Returns (status, body), or (None, "") on a connection error."""
        try:
            status, headers, body = call()
        except OSError as exc:
            self.answers.append((kind, type(exc).__name__, None, time.monotonic()))
            return None, ""
        self.answers.append((kind, status, headers.get("X-Revision"), time.monotonic()))
        return status, body

    def reader(self):
        while self.running:
            self.note("GET", lambda: self.app.nginx.request("/"))

    def browser(self, conn):
        while self.running:
            self.note("GET keep-alive", lambda: conn.request("/"))
            time.sleep(random.uniform(0.05, 0.3))  # a visitor reading: the connection sits idle

    def retries(self):
        """Requests sent again because nginx had closed their idle kept-alive connection."""
        return sum(conn.retries for conn in self.kept_alive)

    def writer(self):
        form = "/submit/"
        while self.running:
            # Each submission from a visitor (a loopback address) of its own: nginx limits POSTs per client.
            browser = Browser(self.app.nginx, source=fresh_client())
            status, page = self.note("GET", functools.partial(browser.request, form))
            if status != 200:
                continue
            url = f"https://{self.tag}-{next(self.numbers)}.example"
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
            body = urlencode(
                {"csrfmiddlewaretoken": token, "name": "Deploy load", "url": url, "description": "x"}
            )
            post = functools.partial(
                browser.request, form, method="POST", body=body, headers=browser.form_headers(form)
            )
            status, _ = self.note("POST", post)
            if status == 302:
                self.posted.append(url)
            time.sleep(0.1)

    def failures(self):
        """Answers that are neither a page nor a redirect: 5xx, connection errors (and anything else)."""
        return [answer for answer in self.answers if answer[1] not in (200, 302)]

    def rows(self):
        """Rows in PostgreSQL for this load's submissions."""
        sql = f"SELECT count(*) FROM app_site WHERE url LIKE 'https://{self.tag}-%'"  # noqa: S608 (our tag)
        return int(self.app.cluster.psql(sql, database=self.app.database))

    def first_answer_from(self, revision):
        return min(at for _, _, rev, at in self.answers if rev == revision)

"""Visitors during a deploy, for the deploy tests and `make bench`: GETs of / and form
submissions through nginx over HTTPS, from threads, with every answer kept (status or connection
error, and the X-Revision that served it), and the submissions checked against PostgreSQL."""

import functools
import itertools
import re
import secrets
import threading
import time
from urllib.parse import urlencode

from tests.harness.http import Browser, fresh_client


class Load:
    """GETs of / from two threads and form submissions from a third, through nginx over HTTPS,
    until stopped. Every answer is kept: (kind, status or connection error, revision, time)."""

    def __init__(self, app, *, writers=1):
        """app: a Stack with .nginx in front of it, and .cluster and .database it stores rows in.
        writers: threads submitting forms (each submission from an address of its own)."""
        self.app, self.tag = app, f"deploy-{secrets.token_hex(4)}"
        self.answers, self.posted, self.running = [], [], True
        self.numbers = itertools.count()  # each submission's URL is unique across writer threads
        self.threads = [threading.Thread(target=self.reader) for _ in range(2)]
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

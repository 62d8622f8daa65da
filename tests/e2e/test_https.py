"""HTTPS through the host nginx: TLS ends there, yet Django knows the request was secure.

The session stack runs the production example (HTTPS=true) behind nginx's self-signed certificate.
"""

import contextlib
import re
import secrets
import urllib.request
from http.cookies import SimpleCookie
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest

ONE_YEAR = 31_536_000


class Browser:
    """Requests through nginx over HTTPS as a browser makes them: a cookie jar, and Origin and
    Referer headers naming the page a form was posted from."""

    def __init__(self, nginx):
        self.nginx = nginx
        self.origin = f"https://localhost:{nginx.https_port}"
        self.cookies = SimpleCookie()  # every cookie received, with its attributes

    def request(self, path, *, method="GET", body=None, headers=None):
        jar = "; ".join(f"{name}={morsel.value}" for name, morsel in self.cookies.items())
        headers = {**({"Cookie": jar} if jar else {}), **(headers or {})}
        status, response_headers, text = self.nginx.request(path, method=method, body=body, headers=headers)
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


@contextlib.contextmanager
def superuser(stack):
    """A site administrator for the duration of a test; yields (username, password)."""
    username, password = f"e2e-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    model = "from django.contrib.auth.models import User; User.objects"
    stack.manage("shell", "-c", f"{model}.create_superuser({username!r}, password={password!r})")
    try:
        yield username, password
    finally:
        stack.manage("shell", "-c", f"{model}.filter(username={username!r}).delete()")


def log_in(browser, username, password):
    status, headers, text = browser.post_form(
        "/admin/login/", {"username": username, "password": password, "next": "/admin/"}
    )
    assert (status, headers["Location"]) == (302, "/admin/"), text


def test_the_submit_form_posts_over_https(stack):
    url = f"https://https-{secrets.token_hex(4)}.example.org"
    status, headers, text = Browser(stack.nginx).post_form(
        "/submit/", {"name": "Posted over HTTPS", "url": url, "description": "Sent through nginx's TLS."}
    )
    assert (status, headers["Location"]) == (302, "/submit/thanks/"), text
    saved = f"from app.models import Site; print(Site.objects.filter(url={url!r}).count())"
    count = stack.manage("shell", "-v", "0", "-c", saved)
    assert count.stdout.strip() == "1"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # hand the 301 back to the caller


def test_django_sees_https_behind_nginx_but_not_without_it(stack):
    # Through nginx: served, not redirected, so Django trusted X-Forwarded-Proto (SECURE_SSL_REDIRECT is on).
    status, _, _ = stack.nginx.request("/submit/")
    assert status == 200
    # The contrast: plain HTTP straight to the container's port is redirected by Django itself.
    direct = urllib.request.Request(f"http://127.0.0.1:{stack.port}/submit/", headers={"Host": "localhost"})
    with pytest.raises(HTTPError) as redirect:
        urllib.request.build_opener(NoRedirect).open(direct, timeout=10)
    assert (redirect.value.code, redirect.value.headers["Location"]) == (301, "https://localhost/submit/")


def test_session_and_csrf_cookies_are_secure(stack):
    browser = Browser(stack.nginx)
    with superuser(stack) as (username, password):
        log_in(browser, username, password)
    for name in ("csrftoken", "sessionid"):
        assert browser.cookies[name]["secure"], f"{name} lacks the Secure flag"
    assert browser.cookies["sessionid"]["httponly"]


def test_plain_http_is_redirected_permanently_to_https(stack):
    for path in ("/", "/submit/?name=x", "/static/site/css/site.css"):
        status, headers, _ = stack.nginx.request(path, https=False)
        assert (status, headers["Location"]) == (301, f"https://localhost{path}")


def hsts_max_age(headers):
    values = headers.get_all("Strict-Transport-Security") or []
    assert len(values) == 1, f"expected one Strict-Transport-Security header, got {values}"
    return int(re.fullmatch(r"max-age=(\d+)(;.*)?", values[0]).group(1))


def test_hsts_is_sent_once_on_app_and_static_responses(stack):
    _, _, home = stack.nginx.request("/")
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', home).group(1)
    # Django's responses (SecurityMiddleware sends HSTS on secure requests only), then nginx's own:
    # a hashed file, an unhashed one (separate nginx locations), and a missing one.
    responses = [("/", 200), ("/submit/", 200), (css, 200), ("/static/site/favicon.svg", 200)]
    for path, expected in [*responses, ("/static/missing.css", 404)]:
        status, headers, _ = stack.nginx.request(path)
        assert status == expected, path
        assert hsts_max_age(headers) >= ONE_YEAR, path

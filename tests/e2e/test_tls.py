"""HTTPS through the host nginx: TLS ends there (Mozilla's intermediate profile, resumption without
session tickets), yet Django knows the request was secure.

The session stack runs the production example (HTTPS=true) behind nginx's self-signed certificate.
"""

import re
import secrets
import ssl

import pytest

from tests.harness.http import Browser, request
from tests.harness.tls import TLS12, TLS13, handshake, tls_context

ONE_YEAR = 31_536_000


def test_the_submit_form_posts_over_https(stack):
    url = f"https://https-{secrets.token_hex(4)}.example.org"
    status, headers, text = Browser(stack.nginx).post_form(
        "/submit/", {"name": "Posted over HTTPS", "url": url, "description": "Sent through nginx's TLS."}
    )
    assert (status, headers["Location"]) == (302, "/submit/thanks/"), text
    saved = f"from app.models import Site; print(Site.objects.filter(url={url!r}).count())"
    count = stack.manage("shell", "-v", "0", "-c", saved)
    assert count.stdout.strip() == "1"


def test_django_sees_https_behind_nginx_but_not_without_it(stack):
    # Through nginx: served, not redirected, so Django trusted X-Forwarded-Proto (SECURE_SSL_REDIRECT is on).
    status, _, _ = stack.nginx.request("/submit/")
    assert status == 200
    # The contrast: plain HTTP straight to the container's port is redirected by Django itself.
    status, headers, _ = request(stack.port, "/submit/")
    assert (status, headers["Location"]) == (301, "https://localhost/submit/")


def test_session_and_csrf_cookies_are_secure(stack):
    browser = Browser(stack.nginx)
    with stack.superuser() as (username, password):
        browser.log_in(username, password)
    for name in ("csrftoken", "sessionid"):
        assert browser.cookies[name]["secure"], f"{name} lacks the Secure flag"
    assert browser.cookies["sessionid"]["httponly"]


def test_plain_http_is_redirected_permanently_to_https(stack):
    for path in ("/", "/submit/?name=x", "/static/site/css/site.css"):
        status, headers, _ = stack.nginx.request(path, https=False)
        assert (status, headers["Location"]) == (301, f"https://localhost{path}")


def test_hsts_comes_from_django_alone_and_names_no_subdomains_by_default(stack):
    _, _, home = stack.nginx.request("/")
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', home).group(1)
    # Django's responses (SecurityMiddleware sends HSTS on secure requests only): one header, with
    # the production example's opt-in parts (includeSubDomains, preload) left out.
    for path in ("/", "/submit/", "/admin/login/"):
        status, headers, _ = stack.nginx.request(path)
        assert status == 200, path
        assert headers.get_all("Strict-Transport-Security") == [f"max-age={ONE_YEAR}"], path
    # nginx's own (a hashed file, an unhashed one, a missing one) send none: a browser learns HSTS
    # from the first page, so a second source could only disagree with Django's.
    for path, expected in [(css, 200), ("/static/site/favicon.svg", 200), ("/static/missing.css", 404)]:
        status, headers, _ = stack.nginx.request(path)
        assert status == expected, path
        assert "Strict-Transport-Security" not in headers, path


def test_tls_is_mozilla_intermediate_and_resumes_without_session_tickets(stack):
    # TLS 1.2 suites without forward secrecy (RSA key exchange) or without AEAD (CBC): the client
    # offers each (set_ciphers would fail here otherwise), and nginx refuses the handshake.
    for suite in ("AES128-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"):
        context = tls_context(TLS12, suite)
        with pytest.raises(ssl.SSLError, match="(?i)alert handshake failure"):
            handshake(stack.nginx, context)
    # What the profile keeps: ECDHE with AEAD on TLS 1.2, and TLS 1.3.
    suite = "ECDHE-RSA-AES128-GCM-SHA256"
    assert handshake(stack.nginx, tls_context(TLS12, suite))[:2] == ("TLSv1.2", suite)
    assert handshake(stack.nginx, tls_context(TLS13))[0] == "TLSv1.3"
    # No ticket (nginx 1.22 would never rotate its key); sessions resume from nginx's cache instead.
    context = tls_context(TLS12)
    _, _, session, _ = handshake(stack.nginx, context)
    assert not session.has_ticket
    assert handshake(stack.nginx, context, session=session)[3], "the session was not resumed"

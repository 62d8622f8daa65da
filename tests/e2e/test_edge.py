"""The edge: what the project's nginx site does before a request reaches the app, met through the
rendered nginx/site.conf in front of the session's stack. Each test that counts against nginx's
per-client limits comes from a loopback address of its own (fresh_client()), so its limits never
fall on another test's requests."""

import base64
import hashlib
import re
import secrets
import select
import socket
import ssl
import time
from urllib.parse import urlencode

import pytest

from tests.harness import run, wait_for
from tests.harness.http import Browser, fresh_client, request

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def tls_context(version=None, ciphers=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
    if version:
        context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def tls_connect(nginx, *, sni="localhost", source="127.0.0.1", context=None, session=None):
    """A TLS connection to nginx's HTTPS port, naming sni (None: no name, as for an IP address)."""
    sock = socket.create_connection(("127.0.0.1", nginx.https_port), 10, (source, 0))
    try:
        return (context or tls_context()).wrap_socket(sock, server_hostname=sni, session=session)
    except BaseException:
        sock.close()
        raise


def handshake(nginx, context=None, **options):
    """One request over a fresh TLS connection; returns the connection's (version, suite, session,
    resumed). The answer is read first: TLS 1.3 sends its session tickets after the handshake."""
    with tls_connect(nginx, context=context, **options) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert conn.recv(64).startswith(b"HTTP/1.1 200")
        return conn.version(), conn.cipher()[0], conn.session, conn.session_reused


# TLS 1.2: nothing arrives after the handshake until an answer (TLS 1.3 sends session tickets),
# so a connection that becomes readable has been answered or closed.
QUIET = tls_context(TLS12)


def post(browser, path, token, fields):
    """A form post with a CSRF token fetched once: the limits count posts, not page views."""
    body = urlencode({"csrfmiddlewaretoken": token, **fields})
    return browser.request(path, method="POST", body=body, headers=browser.form_headers(path))[0]


# --- Item 1: brute force and form floods ------------------------------------------------------


def test_admin_logins_and_form_posts_from_one_client_are_limited_with_429(stack):
    guesser = Browser(stack.nginx, source=fresh_client())
    token = guesser.csrf_token("/admin/login/")
    wrong = {"username": "admin", "password": "not-the-password", "next": "/admin/"}
    attempts = [post(guesser, "/admin/login/", token, wrong) for _ in range(12)]
    # A burst of 5 beyond the first goes through (typos), each answered by Django's form again ...
    assert attempts[:6] == [200] * 6, attempts
    # ... then nginx answers for Django: 6 a minute is the rate, so 12 in a row must meet it.
    assert 429 in attempts, attempts
    assert guesser.request("/admin/login/")[0] == 200  # reading a page is never limited
    # Another client is not affected: the right password logs in meanwhile.
    with stack.superuser() as (username, password):
        Browser(stack.nginx, source=fresh_client()).log_in(username, password)

    flooder = Browser(stack.nginx, source=fresh_client())
    token = flooder.csrf_token("/submit/")
    invalid = {"name": "", "url": "not a url", "description": "x"}  # Django answers 200 with errors
    submissions = [post(flooder, "/submit/", token, invalid) for _ in range(16)]
    assert submissions[:11] == [200] * 11, submissions
    assert 429 in submissions, submissions


# --- Item 2: slow clients ---------------------------------------------------------------------


def test_one_client_gets_32_requests_in_progress_and_the_rest_429_while_others_are_served(stack):
    """A slow sender (headers sent, the body never) ties up a connection until the body timeout;
    one address gets 32 of them, and any more are answered 429 at once."""
    client, held = fresh_client(), []
    try:
        for _ in range(40):
            conn = tls_connect(stack.nginx, source=client, context=QUIET)
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n")
            held.append(conn)
        answered, deadline = {}, time.monotonic() + 5
        while len(answered) < 8 and time.monotonic() < deadline:
            waiting = [conn for conn in held if conn not in answered]
            for conn in select.select(waiting, [], [], 0.5)[0]:
                answered[conn] = conn.recv(64)[:12]
        assert list(answered.values()) == [b"HTTP/1.1 429"] * 8, answered
        still_held = [conn for conn in held if conn not in answered]
        assert not select.select(still_held, [], [], 0.5)[0], "one of the first 32 was answered or closed"
        assert request(stack.nginx.https_port, "/", https=True, source=fresh_client())[0] == 200
    finally:
        for conn in held:
            conn.close()


def closed_by_server(conn):
    """True once the server has closed (or reset) conn; reads and drops whatever else arrived."""
    try:
        while select.select([conn], [], [], 0)[0]:
            if not conn.recv(65536):
                return True
        return False
    except OSError:
        return True


def test_slow_and_idle_connections_are_closed_while_other_clients_are_served(stack):
    """Slowloris: 60 connections from one client trickling a header line a second, one that never
    starts its TLS handshake, one left idle after its answer. nginx closes every one of them (the
    whole header within 10 s, idle keep-alive after 15 s), long before its defaults (60 s, 75 s)."""
    client, https_port = fresh_client(), stack.nginx.https_port
    slow = [tls_connect(stack.nginx, source=client, context=QUIET) for _ in range(60)]
    silent = socket.create_connection(("127.0.0.1", https_port), 10, (client, 0))
    idle = tls_connect(stack.nginx, source=client, context=QUIET)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    open_ = {*slow, silent, idle}
    try:
        for conn in slow:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        for second in range(40):  # a bound for the test, well past nginx's timeouts
            for conn in slow:
                if conn in open_:
                    try:
                        conn.sendall(f"X-Slow-{second}: 1\r\n".encode())
                    except OSError:
                        open_.discard(conn)
            open_ = {conn for conn in open_ if not closed_by_server(conn)}
            if second == 2:  # while they are all open, another client is served
                assert request(https_port, "/", https=True, source=fresh_client())[0] == 200
            if not open_:
                break
            time.sleep(1)
        assert not open_, f"{len(open_)} connections still open after {second} s"
    finally:
        for conn in [*slow, silent, idle]:
            conn.close()


# --- Item 3: the keep-alive race with gunicorn ------------------------------------------------


def app_connections(port, state):
    """The local ends of the host's TCP connections in state (ss's name) to 127.0.0.1:port."""
    lines = run(["ss", "-Htn", "state", state]).stdout.splitlines()
    return {fields[-2] for fields in map(str.split, lines) if fields[-1] == f"127.0.0.1:{port}"}


def test_nginx_closes_idle_app_connections_before_gunicorn_does(stack):
    """A request sent on a connection the app is closing is lost, and nginx never retries a POST:
    so nginx must be the one that closes an idle connection, before gunicorn's keepalive ends."""
    gunicorn = (stack.dir / "docker/gunicorn.conf.py").read_text()
    gunicorn_idle = int(re.search(r"^keepalive = (\d+)", gunicorn, re.M).group(1))
    upstream = re.search(r"upstream \S+_app \{(.*?)\n\}", stack.nginx.site_file.read_text(), re.S)
    assert int(re.search(r"keepalive_timeout (\d+)s;", upstream.group(1)).group(1)) < gunicorn_idle

    browser = Browser(stack.nginx, source=fresh_client())
    token = browser.csrf_token("/submit/")  # leaves nginx's connection to the app idle in its pool
    pooled = app_connections(stack.port, "established")
    assert pooled, "nginx kept no connection to the app"
    time.sleep(gunicorn_idle + 0.5)  # a visitor filling in the form: past gunicorn's keepalive
    url = f"https://edge-{secrets.token_hex(4)}.example.org"
    fields = {"name": "After a pause", "url": url, "description": "Posted after an idle pause."}
    assert post(browser, "/submit/", token, fields) == 302
    # The end that closes first waits in TIME_WAIT: nginx's, not the app's.
    assert pooled <= app_connections(stack.port, "time-wait"), "the app closed nginx's idle connections"


# --- Item 4: TLS ------------------------------------------------------------------------------


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


# --- Item 5: names the site does not serve ----------------------------------------------------


def test_names_the_site_does_not_serve_get_no_certificate_no_redirect_and_reach_nothing(stack):
    nginx = stack.nginx
    # TLS for another name, or none (a scanner on the IP address): no handshake, so no certificate.
    for sni in ("evil.example", None):
        with pytest.raises(ssl.SSLError, match="(?i)unrecognized name"):
            handshake(nginx, sni=sni)
    # The site's name in SNI but another in Host: closed unanswered, never proxied to the app.
    probe, contrast = f"/probe-{secrets.token_hex(6)}", f"/probe-{secrets.token_hex(6)}"
    with pytest.raises(OSError):
        nginx.request(probe, headers={"Host": "evil.example"})
    assert nginx.request(contrast)[0] == 404  # the site's own name reaches Django
    wait_for(lambda: contrast in stack.logs(), what="the contrast request in gunicorn's access log")
    assert probe not in stack.logs()
    # Plain HTTP for another name: closed unanswered, no redirect to a host the client chose.
    for host in ("evil.example", "127.0.0.1"):
        with pytest.raises(OSError):
            nginx.request("/", https=False, host=host)
    # The site's own name is redirected to its configured name, and no server shows its version.
    status, headers, _ = nginx.request("/x?y=1", https=False)
    assert (status, headers["Location"], headers["Server"]) == (301, "https://localhost/x?y=1", "nginx")
    with socket.create_connection(("127.0.0.1", nginx.http_port), 10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: the catch-all's own 400
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400") and b"\r\nServer: nginx\r\n" in answer, answer
    assert not re.search(rb"nginx/\d", answer), answer


# --- Items 8 and 9: the static folder, and the policies ---------------------------------------


def policy(headers):
    """The one Content-Security-Policy header, as {directive: [values]}."""
    values = headers.get_all("Content-Security-Policy") or []
    assert len(values) == 1, f"expected one Content-Security-Policy header, got {values}"
    return {part.split()[0]: part.split()[1:] for part in values[0].split(";") if part.strip()}


def test_the_static_folder_serves_only_its_own_files_and_no_document_can_run_script(stack):
    token = secrets.token_hex(8)
    outside = stack.dir / f"outside-{token}.txt"  # readable by nginx, but not in the static folder
    plain, link = stack.static / f"plain-{token}.txt", stack.static / f"link-{token}.txt"
    hidden = stack.static / f".secret-{token}.0123456789ab.txt"  # a dotfile shaped like a hashed name
    page = stack.static / f"page-{token}.html"
    try:
        for path in (outside, plain, hidden):
            path.write_text(token)
        page.write_text(f"<script>document.title = '{token}'</script>")
        link.symlink_to(outside)
        assert stack.nginx.request(f"/static/{plain.name}")[::2] == (200, token)  # the contrast
        # The symlink is refused (403, disable_symlinks); the dotfile rule wins over the hashed-name one.
        for path, expected in [(link, 403), (hidden, 404)]:
            status, _, body = stack.nginx.request(f"/static/{path.name}")
            assert (status, token in body) == (expected, False), path.name
        # An .html file someone put there is a sandboxed document that may run no script.
        status, headers, _ = stack.nginx.request(f"/static/{page.name}")
        assert status == 200
        directives = policy(headers)
        assert "sandbox" in directives and directives["default-src"] == ["'none'"], directives
        assert "script-src" not in directives, directives
    finally:
        for path in (outside, plain, link, hidden, page):
            path.unlink(missing_ok=True)


PERMISSIONS = "camera=()"  # one of the features the Permissions-Policy turns off


def same_site(url):
    return url.startswith("/") and not url.startswith("//")


def inline_code(html):
    """What a Content-Security-Policy without 'unsafe-inline' would block in a page: inline
    scripts (JSON data blocks are not run), <style> blocks, style and on* attributes, javascript:
    URLs; and scripts or stylesheets from anywhere but the site itself."""
    found = []
    for attributes in re.findall(r"<script\b([^>]*)>", html):
        src = re.search(r'\bsrc="([^"]*)"', attributes)
        if src and not same_site(src.group(1)):
            found.append(f"script from {src.group(1)}")
        elif not src and 'type="application/json"' not in attributes:
            found.append("inline <script>")
    found += ["<style> block"] * len(re.findall(r"<style\b", html))
    found += re.findall(r"<[^>]*\s(style|on[a-z]+)\s*=", html)
    found += re.findall(r'(?:href|src|action)="\s*javascript:', html, re.I)
    found += [
        f"stylesheet {href}"
        for href in re.findall(r'<link[^>]*href="([^"]*\.css)"', html)
        if not same_site(href)
    ]
    return found


def test_pages_and_static_files_carry_a_content_security_policy_and_the_admin_works_under_it(stack):
    browser = Browser(stack.nginx, source=fresh_client())
    _, _, home = browser.request("/")
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', home).group(1)
    for path, expected in [("/", 200), ("/submit/", 200), ("/admin/login/", 200), ("/no-such-page/", 404)]:
        status, headers, text = browser.request(path)
        assert status == expected, path
        page = policy(headers)
        # Scripts and styles from the site itself only, no plugins, no framing, forms post home.
        assert page["default-src"] == ["'self'"] and "script-src" not in page, page
        assert (page["object-src"], page["frame-ancestors"], page["form-action"]) == (
            ["'none'"],
            ["'none'"],
            ["'self'"],
        )
        assert PERMISSIONS in headers["Permissions-Policy"], path
        assert inline_code(text) == [], path
    # The one inline style, the error pages' (they may load no file when things fail), by its hash.
    error_page = (stack.dir / "templates/error_page.html").read_text()
    style = re.search(r"<style>(.*?)</style>", error_page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert page["style-src"] == ["'self'", f"'sha256-{digest}'"], "error_page.html's <style> changed"
    for path, expected in [(css, 200), ("/static/site/favicon.svg", 200), ("/static/missing.css", 404)]:
        status, headers, _ = browser.request(path)
        assert status == expected, path
        assert "sandbox" in policy(headers) and PERMISSIONS in headers["Permissions-Policy"], path
    # The admin under this policy: the pages a moderator uses need nothing it blocks.
    with stack.superuser() as (username, password):
        browser.log_in(username, password)
        _, _, users = browser.request("/admin/auth/user/")
        user_page = re.search(r'href="(/admin/auth/user/\d+/change/)"', users).group(1)
        for path in [
            "/admin/",
            "/admin/app/site/",
            "/admin/app/site/add/",
            user_page,
            "/admin/password_change/",
        ]:
            status, _, text = browser.request(path)
            assert status == 200, path
            assert inline_code(text) == [], path

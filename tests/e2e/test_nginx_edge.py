"""The edge: what one client may take from the project's nginx site (the rendered nginx/site.conf in
front of the session's stack) before a request reaches the app: form posts and logins, requests in
progress, body size, connections from one address (nginx's and the firewall's caps), one IPv6 /64,
and the names it does not serve. Each test that counts against nginx's per-client limits comes from
a loopback address of its own (fresh_client()), so its limits never fall on another test's requests."""

import re
import secrets
import select
import shutil
import socket
import ssl
import time

import pytest

from tests.harness import run, wait_for
from tests.harness.http import Browser, fresh_client, post, request, status
from tests.harness.tls import QUIET, handshake, tls_connect


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


def test_a_body_over_one_megabyte_is_refused_by_nginx_before_gunicorn(stack):
    big, small = f"big-{secrets.token_hex(4)}", f"small-{secrets.token_hex(4)}"
    status, headers, _ = stack.nginx.request(f"/submit/?probe={big}", method="POST", body=b"x" * (2**20 + 1))
    assert status == 413
    assert headers["Server"] == "nginx"
    # The contrast: a body just under the limit does reach gunicorn (and CSRF refuses it there).
    status, _, _ = stack.nginx.request(f"/submit/?probe={small}", method="POST", body=b"x" * (2**20 - 1024))
    assert status == 403
    wait_for(lambda: small in stack.logs(), what="the small body's line in gunicorn's access log")
    assert big not in stack.logs()


def trickle(nginx, source, count, *, https=False):
    """count connections from source, each sending the first line of a header and no more, as a
    slowloris does: (the connections that opened, how many were refused or closed at once)."""
    held, refused = [], 0
    for _ in range(count):
        try:
            if https:  # TLS first: nginx can reuse a plain connection that is still reading its header
                conn = tls_connect(nginx, source=source, context=QUIET)
            else:
                conn = socket.create_connection(("127.0.0.1", nginx.http_port), 5, (source, 0))
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            held.append(conn)
        except OSError:  # refused by the firewall, or closed by an nginx out of connections
            refused += 1
    return held, refused


def test_one_address_trickling_headers_over_1100_connections_leaves_room_for_everyone_else(stack):
    """The red team's slowloris: one address, more connections than Debian's nginx allows a worker
    (768; the harness had 1024), each still sending its header. With nginx/worker-limits.conf's
    values they fit, and other visitors are served while nginx's header timeout runs out on them."""
    limits = (stack.dir / "nginx/worker-limits.conf").read_text()
    per_worker = int(re.search(r"^\s*worker_connections (\d+);", limits, re.M)[1])
    assert per_worker >= 4 * 1100  # room beyond one address
    held, _ = trickle(stack.nginx, fresh_client(), 1100, https=True)
    try:
        probes, https_port = [], stack.nginx.https_port
        for _ in range(5):  # within the 10 s the header timeout gives the trickle
            probes.append(status(https_port, "/healthz", https=True, source=fresh_client(), timeout=3))
            time.sleep(0.5)
        assert probes == [200] * 5, probes
    finally:
        for conn in held:
            conn.close()
    assert "worker_connections are not enough" not in (stack.nginx.dir / "error.log").read_text()


def test_the_firewall_caps_the_connections_of_one_address_from_its_first_syn(stack, tmp_path):
    """firewall/web-connlimit.nft, loaded as shipped but for the test nginx's ports and a table name
    of its own: one address gets 256 connections still sending headers (nginx's own limit_conn
    counts none of them), the 257th is refused by the kernel, and another address is served."""
    if not shutil.which("nft"):
        pytest.fail("nft not found: run .ci/provision (it installs nftables)")
    nginx, table = stack.nginx, f"web_connlimit_{secrets.token_hex(3)}"
    rules = (stack.dir / "firewall/web-connlimit.nft").read_text().replace("web_connlimit", table)
    rules, ports = re.subn(r"\{ 80, 443 \}", f"{{ {nginx.http_port}, {nginx.https_port} }}", rules)
    assert ports == 2, "firewall/web-connlimit.nft no longer names { 80, 443 }: update this test"
    (tmp_path / "rules.nft").write_text(rules)
    run(["nft", "-f", tmp_path / "rules.nft"])
    held = []
    try:
        run(["nft", "-f", tmp_path / "rules.nft"])  # loading it twice replaces it: the rules are not doubled
        held, refused = trickle(nginx, fresh_client(), 300)
        assert (len(held), refused) == (256, 44)
        assert status(nginx.https_port, "/healthz", https=True, source=fresh_client(), timeout=3) == 200
    finally:
        run(["nft", "delete", "table", "inet", table])
        for conn in held:
            conn.close()


@pytest.fixture
def ipv6_clients():
    """Three IPv6 addresses on this machine's loopback: two in one /64, one in the next /64."""
    net = secrets.token_hex(2)
    addresses = [f"fd17:{net}::a", f"fd17:{net}::b", f"fd17:{net}:0:1::a"]
    for address in addresses:
        run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"])
    yield addresses
    for address in addresses:
        run(["ip", "-6", "addr", "del", f"{address}/128", "dev", "lo"], check=False)


def over_ipv6(nginx, source, request_head):
    """A TLS connection from source to nginx's [::1] HTTPS port, request_head sent on it."""
    sock = socket.create_connection(("::1", nginx.https_port), 10, (source, 0))
    conn = QUIET.wrap_socket(sock, server_hostname="localhost")
    conn.sendall(request_head)
    return conn


def test_an_ipv6_client_is_limited_on_its_64_not_on_each_of_its_addresses(stack, ipv6_clients):
    """One subscriber holds a whole /64: nginx's per-client limits count it as one client, so
    another of its addresses shares the 32 requests in progress, and the next /64 does not."""
    one, same_64, next_64 = ipv6_clients
    slow = b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"  # the body never comes
    held = [over_ipv6(stack.nginx, one, slow) for _ in range(32)]
    try:
        probe = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        answers = {}
        for source in (one, same_64, next_64):
            with over_ipv6(stack.nginx, source, probe) as conn:
                answers[source] = conn.recv(64)[:12]
        assert answers == {one: b"HTTP/1.1 429", same_64: b"HTTP/1.1 429", next_64: b"HTTP/1.1 200"}, answers
    finally:
        for conn in held:
            conn.close()

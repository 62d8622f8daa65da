"""Connections over time through the project's nginx site in front of the session's stack: slow and
idle clients closed, nginx closing its idle connections to the app before gunicorn does, and reloads
(a deploy's switch) losing no request."""

import re
import secrets
import select
import socket
import time

from tests.harness import run
from tests.harness.http import Browser, fresh_client, post, request
from tests.harness.tls import QUIET, tls_connect
from tests.harness.traffic import Load


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


def test_a_reload_closes_idle_kept_alive_connections_and_loses_no_request(stack):
    """What a deploy's switch does to visitors (scripts/deploy.sh reloads nginx twice): requests in
    progress finish on the old workers; connections idle between requests are closed, and the next
    request on one finds it closed without an answer, which clients send again on a new connection
    (tests/harness/traffic.py: KeepAlive). Nothing else fails, a POST included."""
    with Load(stack) as load:
        for _ in range(3):
            stack.nginx.nginx("-s", "reload")
            time.sleep(1.5)
    assert load.failures() == [], load.failures()[:5]
    assert load.retries() >= 1, "no kept-alive connection was idle at a reload: the test proved nothing"
    assert {kind for kind, *_ in load.answers} >= {"GET", "GET keep-alive", "POST"}

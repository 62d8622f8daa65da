"""What the app does for the edge, seen through the real stack: failed logins banned by the shipped
fail2ban filter with the real client's address, /readyz kept from the public, a Host it does not
serve refused (400) and leaving no traceback in the container's log, a form post without a valid
CSRF token refused (403)."""

import secrets
import shutil
import subprocess
from urllib.parse import urlencode

import pytest

from tests.harness import REPO, run, wait_for
from tests.harness.http import Browser, fresh_client, request

FILTER = REPO / "fail2ban" / "filter.d" / "sitekit-admin.conf"


@pytest.mark.skipif(not shutil.which("fail2ban-regex"), reason="fail2ban is not installed (.ci/provision)")
def test_fail2ban_finds_a_failed_admin_login_with_the_real_clients_address(stack):
    client = fresh_client()  # this machine's 127.x.y.z: to nginx, a client of its own
    browser = Browser(stack.nginx, source=client)
    body = urlencode(
        {
            "csrfmiddlewaretoken": browser.csrf_token("/admin/login/"),
            "username": "admin",
            "password": "not-the-password",
            "next": "/admin/",
        }
    )
    # The client claims another address: nginx appends the real one, and only that is believed.
    headers = {**browser.form_headers("/admin/login/"), "X-Forwarded-For": "203.0.113.66"}
    status, _, text = browser.request("/admin/login/", method="POST", body=body, headers=headers)
    assert status == 200 and "Please enter the correct username and password" in text
    # The shipped filter, against the container's own log file, as the jail reads it.
    log_file = stack.inspect("{{.LogPath}}")
    found = run(["fail2ban-regex", "-o", "ip", log_file, str(FILTER)]).stdout.split()
    assert client in found
    assert "203.0.113.66" not in found


@pytest.fixture
def fail2ban(tmp_path, stack):
    """A private fail2ban-server with the distribution's configuration and the shipped jail and
    filter (no other jail), its database in memory, and a dummy action instead of the firewall's.
    Yields fail2ban-client's argv for it."""
    if not shutil.which("fail2ban-server"):
        pytest.skip("fail2ban is not installed (.ci/provision)")
    conf = tmp_path / "conf"
    shutil.copytree("/etc/fail2ban", conf)
    for path in [*(conf / "jail.d").iterdir(), *(conf / "fail2ban.d").iterdir()]:
        path.unlink()
    for kind in ("filter.d", "jail.d"):
        for path in (REPO / "fail2ban" / kind).iterdir():
            shutil.copy(path, conf / kind)
    (conf / "fail2ban.d" / "test.local").write_text("[DEFAULT]\ndbfile = :memory:\n")
    # The test's only changes to the jail: the stack's log (as make fail2ban writes it); ban after 2
    # failures, not 10 (nginx lets a client make 6 at once, then one every 10 s); this machine's
    # addresses count; the ban is only recorded.
    (conf / "jail.d" / "zz-test.local").write_text(
        f"[sitekit-admin]\nlogpath = {stack.inspect('{{.LogPath}}')}\nmaxretry = 2\nignoreself = false\n"
        f"action = dummy[target={tmp_path}/bans]\n"
    )
    client = ["fail2ban-client", "-s", str(tmp_path / "sock")]
    server = subprocess.Popen(
        ["fail2ban-server", "-c", conf, "-s", tmp_path / "sock", "-p", tmp_path / "pid", "-f", "-x"]
        + ["--logtarget", tmp_path / "fail2ban.log"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: run([*client, "status", "sitekit-admin"], check=False).returncode == 0, 60)
        yield client
    finally:
        run([*client, "stop"], check=False)
        server.wait(timeout=60)


def test_the_shipped_jail_bans_a_client_that_keeps_failing(stack, fail2ban):
    client = fresh_client()
    browser = Browser(stack.nginx, source=client)
    for _ in range(2):
        fields = {"username": "admin", "password": "not-the-password", "next": "/admin/"}
        assert browser.post_form("/admin/login/", fields)[0] == 200

    def banned():
        return client in run([*fail2ban, "status", "sitekit-admin"]).stdout

    wait_for(banned, 60, what=f"fail2ban to ban {client}")


def test_readyz_answers_this_machine_but_not_the_internet(stack):
    # Directly on the published port (127.0.0.1 only: deploys and monitoring on the host).
    assert request(stack.port, "/readyz")[0] == 200
    # Through nginx it is an unknown page: no database state, no connection opened for it.
    status, _, text = stack.nginx.request("/readyz", source=fresh_client())
    assert status == 404 and '"status"' not in text
    assert stack.nginx.request("/healthz", source=fresh_client())[0] == 200  # Docker's probe stays


def test_requests_for_other_host_names_leave_no_traceback(stack):
    marker = secrets.token_hex(4)
    for _ in range(3):
        assert request(stack.port, f"/?scan={marker}", host="203.0.113.1")[0] == 400
    logs = stack.logs()  # stdout (gunicorn's access log) and stderr alike
    # Each is the access log's one line, and nothing else: Django's "Invalid HTTP_HOST header"
    # error and its ~2 KB traceback used to follow every one.
    lines = [line for line in logs.splitlines() if marker in line]
    assert len(lines) == 3 and all('HTTP/1.1" 400' in line for line in lines), lines
    assert "Invalid HTTP_HOST" not in logs


def test_a_host_name_not_in_allowed_hosts_gets_400(stack):
    # nginx's catch-all server keeps such requests from Django (tests/e2e/test_nginx_edge.py); behind it,
    # Django refuses them too.
    for host in ("evil.example", "localhost.evil.example", "127.0.0.1"):
        status, _, _ = request(stack.port, "/", host=host, headers={"X-Forwarded-Proto": "https"})
        assert status == 400, host


def test_a_form_post_without_a_valid_csrf_token_gets_403(stack):
    browser = Browser(stack.nginx)
    fields = {"name": "No token", "url": f"https://csrf-{secrets.token_hex(4)}.example", "description": "x"}
    token = browser.csrf_token("/submit/")
    headers = browser.form_headers("/submit/")
    attempts = {
        "no token, no cookie": (fields, {"Origin": browser.origin, "Referer": browser.origin + "/submit/"}),
        "cookie but no token": (fields, headers),
        "token from another origin": (
            {"csrfmiddlewaretoken": token, **fields},
            {**headers, "Origin": "https://evil.example", "Referer": "https://evil.example/"},
        ),
    }
    for attempt, (data, request_headers) in attempts.items():
        status, _, _ = browser.request(
            "/submit/",
            method="POST",
            body=urlencode(data),
            headers={"Content-Type": "application/x-www-form-urlencoded", **request_headers},
        )
        assert status == 403, attempt

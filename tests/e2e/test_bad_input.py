"""Bad input, from the operator and from the Internet: the container refuses a broken configuration
with a line that says what is wrong, and nginx and Django turn hostile requests away cleanly."""

import secrets
from urllib.parse import urlencode

import pytest

from tests.harness import Stack, site_env, wait_for
from tests.harness.http import Browser, request

# --- The container, started with a broken .env ------------------------------------------------


@pytest.fixture(scope="module")
def misconfigured(e2e_root, stack, host_db):
    """start(**changes): the session's image started through the project's compose file (`compose
    run`: no restart policy, so one start) with the site's .env changed (None removes a variable)
    and quick database retries; returns (exit status, everything the container printed)."""
    app = Stack(e2e_root, "sitekit-bad-env", image=stack.image)
    app.compose("create")  # the network, now: compose's own progress lines stay out of the output

    def start(**changes):
        app.write_env(site_env(host_db, 443, DB_WAIT_ATTEMPTS="2", DB_WAIT_SECONDS="1", **changes))
        result = app.compose("run", "--rm", "-T", "app", check=False, timeout=180)
        return result.returncode, (result.stdout + result.stderr).strip()

    yield start
    app.down()


def test_a_wrong_database_password_stops_the_container_at_once(misconfigured):
    status, output = misconfigured(DB_PASSWORD="not-the-password")
    assert status != 0
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output  # retrying cannot fix a password: no second attempt
    assert 'password authentication failed for user "sitekit"' in output


def test_an_unresolvable_database_host_is_named_and_given_up_on(misconfigured):
    status, output = misconfigured(DB_HOST="db.invalid")
    assert status != 0
    assert "Traceback" not in output
    assert 'could not translate host name "db.invalid"' in output
    assert output.splitlines()[-1].endswith(
        "database still unreachable after 2 attempts; giving up (the restart policy will try again)"
    )


def test_a_missing_secret_key_stops_the_container_with_one_line(misconfigured):
    status, output = misconfigured(SECRET_KEY=None)
    assert status != 0
    assert output == "configuration error: SECRET_KEY is required but not set"


def test_a_non_numeric_web_concurrency_stops_the_container_with_a_line_naming_it(misconfigured):
    status, output = misconfigured(WEB_CONCURRENCY="three")
    assert status != 0
    assert "Traceback" not in output
    assert "WEB_CONCURRENCY" in output.splitlines()[-1]


# --- Hostile requests through nginx -----------------------------------------------------------


def test_a_host_name_not_in_allowed_hosts_gets_400(stack):
    # nginx's catch-all server keeps such requests from Django (tests/e2e/test_edge.py); behind it,
    # Django refuses them too.
    for host in ("evil.example", "localhost.evil.example", "127.0.0.1"):
        status, _, _ = request(stack.port, "/", host=host, headers={"X-Forwarded-Proto": "https"})
        assert status == 400, host


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


def test_path_traversal_out_of_static_serves_no_file(stack):
    secret_key = stack.env["SECRET_KEY"]  # what the stack's .env holds
    settings_source = 'env_bool("DEBUG"'
    # Both targets exist where an escape from nginx's `root` would land: the stack's copy of the repo.
    assert settings_source in (stack.dir / "app/settings.py").read_text()
    for path in (
        "/static/../app/settings.py",
        "/static/..%2fapp/settings.py",
        "/static/%2e%2e/app/settings.py",
        "/static/%2e%2e%2fapp%2fsettings.py",
        "/static/..%5capp%5csettings.py",
        "/static../app/settings.py",
        "/static//../app/settings.py",
        "/static/../.env",
        "/static/%2e%2e/%2eenv",
        "/static/../../../../etc/passwd",
    ):
        status, _, body = stack.nginx.request(path)
        assert status in (400, 403, 404), path
        assert settings_source not in body and secret_key not in body and "root:x:0:0" not in body, path


def test_dotfiles_are_never_served(stack):
    token = secrets.token_hex(8)
    hidden, visible = stack.static / ".hidden", stack.static / "visible.txt"
    # What the entrypoint's publish_static writes before renaming it into place: never served half-made.
    partial = stack.static / f".style.0123456789ab.css.{token[:12]}.tmp"
    try:
        for path in (hidden, visible, partial):
            path.write_text(token)
        # The contrast: the same content under an ordinary name is served.
        assert stack.nginx.request("/static/visible.txt")[::2] == (200, token)
        for path in [
            f"/static/{partial.name}",
            "/static/.hidden",
            "/static/%2ehidden",
            "/.env",
            "/.git/config",
        ]:
            status, _, body = stack.nginx.request(path)
            assert status in (403, 404), path
            assert token not in body, path
    finally:
        for path in (hidden, visible, partial):
            path.unlink(missing_ok=True)


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

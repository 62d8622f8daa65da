"""The first five minutes, as a new user meets them: in a fresh copy of the project with no .env,
`make up` brings the site up on SQLite and prints an address that answers; what is running is in
the log; an admin user can be made without a terminal; sessions survive a restart; a production
setting without a database stops `make up` at once with the container's one clear line; and the
development override reloads an edited template. Only SITE (the project and image name) and the
port differ from a real first run (through the environment, as compose reads it), so sessions overlap."""

import os
import re
import subprocess
import urllib.parse

import pytest

from tests.harness import BASE_IMAGE, Stack, record_build, run, site_env, wait_for
from tests.harness.envfile import example_with
from tests.harness.http import request, status
from tests.harness.stack import build_pull

ADMIN = {
    "DJANGO_SUPERUSER_USERNAME": "first-admin",
    "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
    "DJANGO_SUPERUSER_PASSWORD": "correct horse battery staple",
}


def fresh_copy(root, name, env_lines=None):
    """A copy of the project as cloned, with no .env (or one holding just env_lines)."""
    app = Stack(root, name, own_image=True)
    (app.dir / ".env").unlink()
    if env_lines:
        (app.dir / ".env").write_text("\n".join(env_lines) + "\n")
    # This process's own site settings (the unit tests' database...) must not reach the copy.
    keep = ("PATH", "HOME", "LANG", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")
    app.make_env = {
        **{key: os.environ[key] for key in keep if key in os.environ},
        "SITE": app.name,  # names the project and the image, app.image
        "APP_PORT": str(app.port),
        "PYTHON_IMAGE": BASE_IMAGE,
        # make works it out itself; the dev override's `docker compose up --build` needs it said.
        "BUILD_PULL": build_pull(BASE_IMAGE),
    }
    return app


def make(app, *args, env=None):
    """make ARGS in the copy, with no terminal (as in CI or a script)."""
    result = run(
        ["make", "--no-print-directory", *args],
        cwd=app.dir,
        env={**app.make_env, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=900,
    )
    record_build(app.image)
    return result


@pytest.fixture(scope="module")
def trial(e2e_root):
    app = fresh_copy(e2e_root, "sitekit-trial")
    result = make(app, "up")
    app.up_result = result
    yield app
    app.down()


def page(app, path="/", **options):
    return request(app.port, path, host=f"127.0.0.1:{app.port}", **options)


def test_make_up_with_no_env_serves_the_site_at_the_address_it_prints(trial):
    result = trial.up_result
    assert result.returncode == 0, result.stdout + result.stderr
    address = f"http://127.0.0.1:{trial.port}/"
    assert address in result.stdout.splitlines()[-2], result.stdout
    code, _, html = page(trial)
    assert code == 200, html[:500]
    assert "<form" in html or "Submit" in html
    # The page's own stylesheet loads too: with no nginx in front, the app serves /static/ itself.
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', html).group(1)
    assert page(trial, stylesheet)[0] == 200
    # SQLite and the generated key live in ./data, owned by the container's user.
    data = trial.dir / "data"
    assert (data / "db.sqlite3").stat().st_uid == 33
    assert (data / "secret_key").stat().st_uid == 33


def test_the_log_says_what_runs_and_that_it_is_the_trial_once(trial):
    logs = trial.logs()
    assert logs.count("TRIAL SETUP") == 1, logs
    assert "DB_NAME, DB_USER, DB_HOST" in logs  # which .env lines make it production
    line = re.search(r"sitekit (\S+) \(revision (\S+), build (\S+)\): \d+ workers", logs)
    assert line, logs
    labels = trial.inspect('{{index .Config.Labels "org.opencontainers.image.version"}}')
    assert line.group(1) == labels
    assert line.group(3).startswith("sha256:")  # no BUILD_ID given: the hash of the app's files


def test_make_manage_createsuperuser_without_a_terminal_fails_instead_of_skipping(trial):
    result = make(trial, "manage", "ARGS=createsuperuser")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "skipped" not in output
    assert "DJANGO_SUPERUSER_PASSWORD" in output


def login(app, username, password):
    """Log in to the admin as a browser does; returns the session cookie."""
    _, headers, html = page(app, "/admin/login/")
    csrf = re.search(r"csrftoken=([^;]+)", headers["Set-Cookie"]).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
    code, headers, _ = page(
        app,
        "/admin/login/",
        method="POST",
        body=urllib.parse.urlencode(form),
        headers={
            "Cookie": f"csrftoken={csrf}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"http://127.0.0.1:{app.port}",
        },
    )
    assert code == 302, headers
    return re.search(r"sessionid=([^;]+)", " ".join(headers.get_all("Set-Cookie"))).group(1)


def test_unattended_superuser_and_sessions_that_survive_a_restart(trial):
    result = make(trial, "manage", "ARGS=createsuperuser", env=ADMIN)
    assert result.returncode == 0, result.stdout + result.stderr
    session = login(trial, ADMIN["DJANGO_SUPERUSER_USERNAME"], ADMIN["DJANGO_SUPERUSER_PASSWORD"])
    assert page(trial, "/admin/", headers={"Cookie": f"sessionid={session}"})[0] == 200
    trial.compose("restart", "app")
    wait_for(lambda: trial.state().get("Health", {}).get("Status") == "healthy", 120, what="healthy")
    # Same key, same database: still logged in (a key generated per start would log everyone out).
    assert page(trial, "/admin/", headers={"Cookie": f"sessionid={session}"})[0] == 200


def test_https_without_a_database_stops_make_up_with_the_one_clear_line(e2e_root):
    app = fresh_copy(e2e_root, "sitekit-nodb", ["HTTPS=true", "ALLOWED_HOSTS=example.com"])
    try:
        result = make(app, "up")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "HTTPS=true but DB_NAME is not set" in output
        assert "unhealthy" not in output
        logs = app.logs()
        assert "Traceback" not in logs and "unreachable" not in logs, logs
    finally:
        app.down()


def test_an_unreachable_database_stops_make_up_with_the_reason(e2e_root, host_db):
    env = site_env(host_db, 443, DB_PORT="1", DB_WAIT_ATTEMPTS="2", DB_WAIT_SECONDS="1")
    app = fresh_copy(e2e_root, "sitekit-nodbserver")
    (app.dir / ".env").write_text(example_with(env))
    try:
        result = make(app, "up")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        said = output.split("make up: the site did not come up. The container says:\n", 1)[1]
        assert "is unreachable" in said and "Connection refused" in said, output  # the reason
        assert "unhealthy" not in output
    finally:
        app.down()


def test_make_up_in_production_prints_the_sites_address_and_a_check_that_answers(e2e_root, host_db):
    app = fresh_copy(e2e_root, "sitekit-prod")
    (app.dir / ".env").write_text(example_with(site_env(host_db, 443, ALLOWED_HOSTS="example.com")))
    try:
        result = make(app, "up")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "https://example.com/" in result.stdout  # where nginx will serve it
        check = re.search(r"curl -H 'Host: (\S+)' http://127\.0\.0\.1:(\d+)(/\S*)", result.stdout)
        assert check, result.stdout
        host, port, path = check.groups()
        assert request(int(port), path, host=host)[0] == 200  # the printed check answers
        assert "TRIAL SETUP" not in app.logs()
    finally:
        app.down()


def test_the_development_override_reloads_an_edited_template(e2e_root):
    app = fresh_copy(e2e_root, "sitekit-dev")
    dev = ["-f", "docker-compose.yml", "-f", "compose.dev.yml"]
    try:
        assert make(app, "data").returncode == 0
        result = run(
            ["docker", "compose", *dev, "up", "-d", "--build", "--wait"],
            cwd=app.dir,
            env=app.make_env,
            check=False,
            timeout=900,
        )
        record_build(app.image)
        assert result.returncode == 0, result.stdout + result.stderr
        assert page(app)[0] == 200
        template = app.dir / "templates" / "base.html"
        template.write_text(template.read_text().replace("</body>", "<p>edited-while-running</p></body>"))
        wait_for(lambda: "edited-while-running" in page(app)[2], 30, what="runserver to serve the edit")
        assert status(app.port, "/healthz") == 200
    finally:
        run(["docker", "compose", *dev, "down", "--timeout", "5"], cwd=app.dir, env=app.make_env, check=False)

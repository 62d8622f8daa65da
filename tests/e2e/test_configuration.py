"""A broken configuration: the container, started with a bad .env, refuses with a line that says
what is wrong (no traceback), and gives up at once on what a retry cannot fix."""

import pytest

from tests.harness import Stack, site_env


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
    assert output.splitlines()[-1].endswith("database still unreachable after 2 attempts; giving up")


def test_a_missing_secret_key_stops_the_container_with_one_line(misconfigured):
    status, output = misconfigured(SECRET_KEY=None)
    assert status != 0
    assert output == "configuration error: SECRET_KEY is required but not set"


def test_a_non_numeric_web_concurrency_stops_the_container_with_a_line_naming_it(misconfigured):
    status, output = misconfigured(WEB_CONCURRENCY="three")
    assert status != 0
    assert "Traceback" not in output
    assert "WEB_CONCURRENCY" in output.splitlines()[-1]

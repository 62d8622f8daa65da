"""A bad environment stops the site with one line that names the variable, never a traceback.

Each test starts a fresh process from a clean environment holding only the production example
(.env.example with a real SECRET_KEY), then breaks one variable.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import envfile

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def production_env(**overrides):
    """.env.example's values in an otherwise empty environment; None unsets a variable."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(envfile.example())
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run(argv, env):
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def manage(*args, **overrides):
    return run([sys.executable, "manage.py", *args], production_env(**overrides))


def assert_one_line_naming(result, variable):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and variable in lines[0], lines[0]


def test_the_production_example_passes_the_deployment_checks():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "overrides"),
    [
        pytest.param("SECRET_KEY", {"SECRET_KEY": None}, id="missing-secret-key"),
        pytest.param("SECRET_KEY", {"SECRET_KEY": "too-short-to-sign-anything"}, id="short-secret-key"),
        pytest.param("DEBUG", {"DEBUG": "maybe"}, id="garbage-debug"),
        pytest.param("HTTPS", {"HTTPS": "yes please"}, id="garbage-https"),
        pytest.param("HSTS_PRELOAD", {"HSTS_PRELOAD": "true"}, id="preload-without-subdomains"),
        pytest.param("DB_PORT", {"DB_PORT": "5432/tcp"}, id="malformed-db-port"),
        pytest.param(
            "CSRF_TRUSTED_ORIGINS",
            {"CSRF_TRUSTED_ORIGINS": "https://example.com,www.example.com"},
            id="origin-without-scheme",
        ),
        pytest.param(
            "SECRET_KEY_FILE", {"SECRET_KEY_FILE": "/run/secrets/secret_key"}, id="secret-key-and-file"
        ),
        pytest.param(
            "SECRET_KEY_FILE",
            {"SECRET_KEY": None, "SECRET_KEY_FILE": "/nonexistent/secret_key"},
            id="missing-secret-key-file",
        ),
        pytest.param("ALLOWED_HOSTS", {"ALLOWED_HOSTS": " , "}, id="no-allowed-hosts"),
    ],
)
def test_a_bad_variable_stops_manage_py_with_one_line(variable, overrides):
    assert_one_line_naming(manage("check", **overrides), variable)


@pytest.mark.parametrize("text", ["0", "false", "no", "off"])
def test_false_spellings_turn_debug_off(text):
    # With DEBUG off a SECRET_KEY is required: the error proves "0" was not read as bool("0").
    assert_one_line_naming(manage("check", DEBUG=text, SECRET_KEY=None), "SECRET_KEY")


def test_debug_on_needs_no_secret_key():
    # The contrast that makes the test above meaningful: "1" is on, and then a dev key is used.
    result = manage("check", DEBUG="1", SECRET_KEY=None)
    assert result.returncode == 0, result.stderr


def test_only_runserver_defaults_to_debug():
    unconfigured = {"DEBUG": None, "SECRET_KEY": None, "ALLOWED_HOSTS": None}
    # Any other command runs the production settings: it refuses to start without a key.
    assert_one_line_naming(manage("migrate", "--plan", **unconfigured), "SECRET_KEY")
    # runserver gets DEBUG on, so the settings load and it reaches its own argument check.
    result = manage("runserver", "not-a-port", **unconfigured)
    assert result.returncode != 0
    assert (
        result.stderr.strip() == 'CommandError: "not-a-port" is not a valid port number or address:port pair.'
    )


def gunicorn_check_config(**overrides):
    argv = [VENV_BIN / "gunicorn", "--check-config", "-c", "docker/gunicorn.conf.py", "app.asgi:application"]
    return run(argv, production_env(PYTHONPATH=str(REPO), **overrides))  # as the image's PYTHONPATH=/app


def test_gunicorn_accepts_the_production_example():
    result = gunicorn_check_config()
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_zero_workers_with_one_line():
    # gunicorn itself parses WEB_CONCURRENCY before it reads this config file, so text and negative
    # numbers never get here: tests/e2e/test_configuration.py checks those through the container.
    assert_one_line_naming(gunicorn_check_config(WEB_CONCURRENCY="0"), "WEB_CONCURRENCY")


def test_db_password_file_supplies_the_database_password(tmp_path):
    # The throwaway test database (tests/plugin.py) requires its password: connect with it from a file.
    secret = tmp_path / "db_password"
    secret.write_text(os.environ["DB_PASSWORD"] + "\n")  # the newline `echo` and editors leave is dropped
    database = {key: os.environ[key] for key in ("DB_NAME", "DB_USER", "DB_HOST", "DB_PORT")}
    result = manage("check_database", DB_PASSWORD=None, DB_PASSWORD_FILE=str(secret), **database)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("is reachable")

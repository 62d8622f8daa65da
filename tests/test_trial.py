"""The trial setup (no DB_NAME): a fresh clone runs with nothing configured, keeps its generated key
across restarts, and never passes for production: HTTPS=true without a database refuses to start.

Each test runs manage.py in a fresh process from an environment holding only what it names."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_settings import assert_one_line_naming, production_env

REPO = Path(__file__).resolve().parent.parent
PRINT = "from django.conf import settings as s; print(s.SECRET_KEY, s.ALLOWED_HOSTS, s.DATABASES['default'])"


def trial_env(data_dir, **extra):
    """Nothing configured, as with no .env at all; DATA_DIR is where ./data is mounted."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return {**env, "DATA_DIR": str(data_dir), **extra}


def manage(env, *args, stdin=subprocess.DEVNULL):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, stdin=stdin, capture_output=True, text=True
    )


def test_the_trial_needs_no_configuration_and_answers_on_localhost_only(tmp_path):
    result = manage(trial_env(tmp_path), "shell", "-v", "0", "-c", PRINT)
    assert result.returncode == 0, result.stderr
    key, rest = result.stdout.split(" ", 1)
    assert len(key) >= 50
    assert "['localhost', '127.0.0.1', '[::1]']" in rest  # not a public host name, not "*"
    assert "sqlite3" in rest and str(tmp_path / "db.sqlite3") in rest


def test_the_generated_secret_key_is_kept_so_sessions_survive_a_restart(tmp_path):
    first = manage(trial_env(tmp_path), "shell", "-v", "0", "-c", PRINT).stdout.split(" ", 1)[0]
    second = manage(trial_env(tmp_path), "shell", "-v", "0", "-c", PRINT).stdout.split(" ", 1)[0]
    assert first == second
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # readable by the container's user alone


def test_https_without_a_database_refuses_with_one_line_naming_db_name():
    # The production example with DB_NAME forgotten: never the trial's SQLite behind a real domain.
    result = manage(production_env(DB_NAME=None), "check")
    assert_one_line_naming(result, "DB_NAME")
    assert "HTTPS=true" in result.stderr


def test_production_gets_no_trial_defaults():
    # With a database named, a missing host list or key is still an error, not localhost or a new key.
    assert_one_line_naming(manage(production_env(ALLOWED_HOSTS=None), "check"), "ALLOWED_HOSTS")
    assert_one_line_naming(manage(production_env(SECRET_KEY=None), "check"), "SECRET_KEY")


def test_an_unwritable_data_dir_is_one_line_naming_it(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the folder should be: unwritable for root too
    assert_one_line_naming(manage(trial_env(blocked / "data"), "check"), "DATA_DIR")


@pytest.mark.parametrize("earlier_version", [False, True])
def test_the_trials_database_and_its_folder_are_for_the_site_user_alone(tmp_path, earlier_version):
    # The SQLite file holds the admin's password hashes and the sessions (a session is a login).
    data, database = tmp_path / "data", tmp_path / "data" / "db.sqlite3"
    if earlier_version:  # what `make data` and an earlier version left: both readable by all
        data.mkdir(mode=0o755)
        database.touch(mode=0o644)
    umask = os.umask(0o022)  # the usual one, which alone would make both readable by all
    try:
        result = manage(trial_env(data), "migrate", "--verbosity", "0")
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert database.stat().st_size > 0  # the real database, migrated


def test_createsuperuser_without_a_terminal_fails_instead_of_skipping(tmp_path):
    assert manage(trial_env(tmp_path), "migrate", "--verbosity", "0").returncode == 0
    result = manage(trial_env(tmp_path), "createsuperuser")
    assert result.returncode != 0
    assert "skipped" not in result.stdout + result.stderr
    assert result.stderr.strip().startswith("CommandError: no terminal")
    assert "DJANGO_SUPERUSER_PASSWORD" in result.stderr


def test_createsuperuser_without_a_terminal_uses_django_superuser_variables(tmp_path):
    env = trial_env(tmp_path)
    assert manage(env, "migrate", "--verbosity", "0").returncode == 0
    admin = {
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "a long pass phrase nobody guesses",
    }
    result = manage({**env, **admin}, "createsuperuser")
    assert result.returncode == 0, result.stderr
    check = "from django.contrib.auth.models import User; u = User.objects.get(username='admin'); "
    check += "print(u.is_superuser, u.check_password('a long pass phrase nobody guesses'))"
    assert manage(env, "shell", "-v", "0", "-c", check).stdout.strip() == "True True"


def test_production_leaves_static_files_to_nginx(client, settings):
    # This process runs the production settings (a database is named): the trial's /static/ route,
    # for when no nginx is in front, is not there.
    assert settings.TRIAL is False
    assert client.get("/static/site/css/site.css").status_code == 404

"""The database path's own behaviour: every connection's statements are bounded by
DB_STATEMENT_TIMEOUT, a cancelled query gets a page that says so, migrate is not bounded (it may
wait for another container's migrate), check_database names a socket as the operator sees it and
waits a bounded number of times, and the entrypoint's marker follows the build and the migrations."""

import io
import os
import subprocess
import sys
import time
from unittest import mock

import psycopg2
import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, connections

from app.database import StatementTimeoutMiddleware
from app.management.commands.check_database import database_state, preparation_key
from app.management.commands.migrate import MIGRATE_LOCK_ID
from tests.test_settings import REPO, assert_one_line_naming, manage, production_env


def database_env(**overrides):
    """DB_* of the test session's server (tests/plugin.py), for a manage.py subprocess."""
    keys = ("DB_NAME", "DB_USER", "DB_PASSWORD", "DB_HOST", "DB_PORT")
    return {**{key: os.environ[key] for key in keys}, **overrides}


def other_session():
    """A second session to the test database, outside Django: another process, as it were."""
    db = connection.settings_dict
    conn = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"]
    )
    conn.autocommit = True
    return conn


def query(conn, sql, params=()):
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.mark.django_db
def test_every_new_connection_gets_the_default_statement_timeout(settings):
    fresh = connections.create_connection("default")
    try:
        fresh.ensure_connection()
        assert settings.DB_STATEMENT_TIMEOUT == 10
        assert query(fresh.connection, "SHOW statement_timeout") == [("10s",)]
    finally:
        fresh.close()
    # The control: PostgreSQL's own default, which the site replaces, is no limit at all.
    outside = other_session()
    assert query(outside, "SHOW statement_timeout") == [("0",)]
    outside.close()


def test_db_statement_timeout_comes_from_the_environment():
    code = "from django.db import connection\nc = connection.cursor()\nc.execute('SHOW statement_timeout')\n"
    env = database_env(DB_STATEMENT_TIMEOUT="3")
    result = manage("shell", "-v", "0", "-c", code + "print(c.fetchone()[0])", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3s"


def test_a_malformed_db_statement_timeout_stops_manage_py_with_one_line():
    assert_one_line_naming(manage("check", DB_STATEMENT_TIMEOUT="10s"), "DB_STATEMENT_TIMEOUT")


@pytest.mark.django_db(transaction=True)
def test_a_query_past_the_timeout_is_cancelled_with_a_page_that_says_so(client, settings, caplog):
    settings.DB_STATEMENT_TIMEOUT = 1
    connection.close()  # the request's connection is a new one, as in production: the timeout is set
    blocker = other_session()
    blocker.autocommit = False
    try:
        # Another session holds the table: the search's SELECT waits, past its timeout.
        query(blocker, "SELECT 1 FROM pg_class LIMIT 1")
        blocker.cursor().execute("LOCK TABLE app_site IN ACCESS EXCLUSIVE MODE")
        response = client.get("/", {"q": "anything"})
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code == 503
    page = response.content.decode()
    assert "That took too long" in page
    assert "after 1 second," in page
    assert response["Retry-After"]
    assert any("query cancelled after 1 s" in record.getMessage() for record in caplog.records)
    # The connection stays usable: the next request is served normally.
    assert client.get("/").status_code == 200


def test_other_database_errors_are_left_to_the_500_page():
    middleware = StatementTimeoutMiddleware(lambda request: None)
    assert middleware.process_exception(None, OperationalError("connection refused")) is None
    assert middleware.process_exception(None, ValueError("not the database")) is None


@pytest.mark.django_db(transaction=True)
def test_migrate_waits_for_another_migrate_longer_than_the_statement_timeout():
    """A second container's migrate waits on the advisory lock while the first one migrates; with
    the site's statement_timeout on that wait it would be cancelled and the container would die."""
    holder = other_session()
    query(holder, "SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_ID])
    env = production_env(**database_env(DB_NAME=connection.settings_dict["NAME"], DB_STATEMENT_TIMEOUT="1"))
    waiting = subprocess.Popen(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waits_on_lock = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        for _ in range(300):
            if query(holder, waits_on_lock) == [(1,)] or waiting.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(2)  # twice its statement_timeout, while it waits on the lock
        assert waiting.poll() is None, waiting.communicate()
        assert query(holder, waits_on_lock) == [(1,)]
    finally:
        query(holder, "SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK_ID])
        holder.close()
        out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "No migrations to apply" in out


def test_check_database_names_the_socket_file_it_looked_for(tmp_path):
    result = manage("check_database", DB_HOST=str(tmp_path), DB_PORT="6432", DB_USER="www-data")
    assert result.returncode == 1  # worth retrying: PostgreSQL (or pgbouncer) may be starting
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"PostgreSQL database 'sitekit' as user 'www-data' via socket {tmp_path}/.s.PGSQL.6432 is unreachable"
    )
    assert "is PostgreSQL, or pgbouncer on 6432, running?" in line


def test_check_database_waits_a_bounded_number_of_times_one_line_each(tmp_path):
    env = {"DB_HOST": str(tmp_path), "DB_WAIT_ATTEMPTS": "3", "DB_WAIT_SECONDS": "0"}
    result = manage("check_database", "--wait", **env)
    assert result.returncode == 1  # unreachable: the restart policy tries again later
    assert "Traceback" not in result.stderr
    *attempts, last = result.stderr.splitlines()
    assert [line.split(":")[0] for line in attempts] == ["attempt 1/3", "attempt 2/3", "attempt 3/3"]
    assert all("is unreachable" in line for line in attempts)
    assert last == "error: database still unreachable after 3 attempts; giving up"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DB_WAIT_ATTEMPTS", "thirty"), ("DB_WAIT_ATTEMPTS", "0"), ("DB_WAIT_SECONDS", "2s")],
)
def test_a_malformed_wait_setting_stops_check_database_with_one_line(variable, value):
    result = manage("check_database", "--wait", **{variable: value})
    assert result.returncode == 2  # misconfigured: the entrypoint does not retry
    assert_one_line_naming(result, variable)


@pytest.fixture
def state(db):
    """(the preparation key, the database state) of the test database, read as the entrypoint does."""
    return lambda: (preparation_key(connection), database_state(connection))


def test_the_preparation_key_follows_the_build_and_every_migration_row(state, monkeypatch):
    key, migrated = state()
    assert state() == (key, migrated)  # the same build and database: the same key
    monkeypatch.setenv("APP_BUILD_ID", "another-build")
    assert state()[0] != key and state()[1] == migrated  # a new build prepares again
    monkeypatch.delenv("APP_BUILD_ID")
    with connection.cursor() as cursor:  # another version migrated (or migrated back) this database
        cursor.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('app', '9999_x', now())")
        assert state()[0] != key
        cursor.execute("DELETE FROM django_migrations WHERE name = '9999_x'")
        assert state() == (key, migrated)
        cursor.execute("DELETE FROM django_migrations WHERE name = (SELECT max(name) FROM django_migrations)")
        assert state()[0] != key


def test_an_empty_database_has_a_state_of_its_own(state):
    _, migrated = state()
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA nothing_here")
        cursor.execute("SET LOCAL search_path TO nothing_here")  # no django_migrations visible
        _, empty = state()
    assert migrated.startswith("postgresql oid ") and empty == migrated.split(":")[0] + ": empty"


def test_mark_prepared_leaves_one_marker_named_by_the_key_in_each_folder(state, tmp_path):
    data, public = tmp_path / "data", tmp_path / "static"
    for folder in (data, public):
        folder.mkdir()
        (folder / ".prepared-of-an-older-build").write_text("")
        (folder / "kept").write_text("the trial's secret key, a published file")
    call_command("mark_prepared", str(data), "--also", str(public), stdout=io.StringIO())
    key, migrated = state()
    for folder in (data, public):
        [marker] = folder.glob(".prepared-*")
        assert marker.name == f".prepared-{key}"
        assert f"database {migrated}" in marker.read_text()
        assert sorted(path.name for path in folder.iterdir()) == [marker.name, "kept"]  # no temporary


def test_mark_prepared_into_an_unwritable_folder_says_how_to_fix_it(state, tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")
    fix = r"^cannot write the marker in \S+ \(.+\): on the host, run: sudo mkdir -p ./data && sudo chown "
    with pytest.raises(CommandError, match=fix):
        call_command("mark_prepared", str(not_a_folder))


@pytest.mark.django_db(transaction=True)
def test_a_database_without_a_free_connection_slot_gets_the_busy_page_not_the_outage_one(client, caplog):
    full = OperationalError('connection failed: FATAL:  too many connections for role "sitekit"')
    connection.close()  # the request opens its own connection, as in production, and is refused
    with mock.patch.object(connection, "get_new_connection", side_effect=full):
        response = client.get("/")
    assert response.status_code == 503
    assert "Busy just now" in response.content.decode() and response["Retry-After"]
    assert "GET /: database busy: connection failed" in caplog.text

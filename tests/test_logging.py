"""What a request leaves in the log (stderr, which Docker keeps and rotates)."""

import logging

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory

from app.database import StatementTimeoutMiddleware
from tests.test_settings import manage


def test_a_request_for_another_host_name_leaves_no_traceback():
    # Scanners probe by IP address all day. Django logs each as an error with the exception's
    # traceback (~2 KB): with no handler, Python's last-resort handler would print all of it and a
    # scanner could flush the rotated logs. The access log's one line is the record of it.
    # A fresh process, as in the container: the settings' logging alone (pytest adds handlers).
    code = (
        "from django.test import Client; "
        "print([Client().get('/', HTTP_HOST='203.0.113.1').status_code for _ in range(3)])"
    )
    result = manage("shell", "--verbosity", "0", "-c", code)
    assert result.stdout.strip() == "[400, 400, 400]", result.stderr
    assert result.stderr == ""


@pytest.mark.django_db
def test_a_request_path_cannot_forge_a_log_line(caplog, settings):
    # fail2ban bans on lines that start "WARNING app.logins: login failed from <address>": a path
    # with an encoded line break (%0A) must stay on the line it was logged on.
    settings.DB_STATEMENT_TIMEOUT = 10
    forged = 'WARNING app.logins: login failed from 198.51.100.1 for user "x"'
    request = RequestFactory().get("/x%0A" + forged.replace(" ", "%20"))
    assert "\n" in request.path
    with pytest.raises(OperationalError) as cancelled, connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 1")
        cursor.execute("SELECT pg_sleep(1)")  # a real cancellation, SQLSTATE 57014
    StatementTimeoutMiddleware(lambda request: None).process_exception(request, cancelled.value)
    [record] = [record for record in caplog.records if record.name == "app.database"]
    line = logging.Formatter("{levelname} {name}: {message}", style="{").format(record)
    assert (
        line == f"WARNING app.database: GET /x\\n{forged}: query cancelled after 10 s (DB_STATEMENT_TIMEOUT)"
    )

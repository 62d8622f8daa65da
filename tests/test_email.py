"""Error reports reach ADMINS by mail, once per error per 10 minutes, and a dead mail server cannot
hold a request; an outage of the database is a page and a log line, not a mail per request."""

import logging
import socket
import socketserver
import threading
import time
from types import SimpleNamespace
from unittest import mock

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

import app.mail
from app.mail import ThrottledAdminEmailHandler, env_addresses, sender
from app.models import Site
from tests.test_database import other_session, query
from tests.test_settings import assert_one_line_naming, manage
from tests.test_views import FORM, add_site


def break_the_home_page(*args, **kwargs):
    raise RuntimeError("the home page broke")  # a new exception each time, as real code raises


BROKEN_HOME = mock.patch.object(Site.objects, "filter", side_effect=break_the_home_page)


@pytest.fixture
def error_mails(settings):
    """mail.outbox once the mail thread has sent what was queued; each test's errors are new."""
    settings.ADMINS = [("Ops", "ops@example.com")]
    for handler in logging.getLogger("django").handlers:
        if isinstance(handler, ThrottledAdminEmailHandler):
            handler.mailed.clear()

    def sent():
        assert sender.wait(10)
        return mail.outbox

    yield sent
    sender.wait(10)


def test_admins_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ADMINS", "Jane Doe <jane@example.com>, ops@example.com,<noc@example.com>")
    assert env_addresses("ADMINS") == [
        ("Jane Doe", "jane@example.com"),
        ("ops@example.com", "ops@example.com"),
        ("noc@example.com", "noc@example.com"),
    ]


def test_a_quoted_name_may_hold_a_comma(monkeypatch):
    # As in any mail header: "Doe, Jane" is one name, not two items split at its comma.
    monkeypatch.setenv("ADMINS", '"Doe, Jane" <jane@example.com>, ops@example.com')
    pairs = [("Doe, Jane", "jane@example.com"), ("ops@example.com", "ops@example.com")]
    assert env_addresses("ADMINS") == pairs
    result = manage("check", ADMINS='"Doe, Jane" <jane@example.com>', EMAIL_HOST="smtp.example.com")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "jane",
        "Jane Doe <jane@example.com",
        "jane@example.com ops@example.com",  # a comma forgotten
        "Doe, Jane <jane@example.com>",  # a comma inside an unquoted name: two items, "Doe" no address
        '"Doe, Jane <jane@example.com>',  # a quote never closed
        "jane@example.com <ops@example.com>",  # a comma forgotten before a bracketed address
        "ops@example.com, jane",
    ],
)
def test_garbage_in_admins_stops_the_site_with_one_line(value):
    assert_one_line_naming(manage("check", ADMINS=value, EMAIL_HOST="smtp.example.com"), "ADMINS")


def test_admins_without_a_mail_server_stops_the_site_with_one_line():
    # Reports promised to someone must be sent: not only printed to the log.
    assert_one_line_naming(manage("check", ADMINS="ops@example.com", EMAIL_HOST=""), "ADMINS")
    result = manage("check", ADMINS="Ops <ops@example.com>", EMAIL_HOST="smtp.example.com")
    assert result.returncode == 0, result.stderr


def test_a_non_numeric_email_timeout_stops_the_site_with_one_line():
    assert_one_line_naming(manage("check", EMAIL_TIMEOUT="10s"), "EMAIL_TIMEOUT")


@pytest.mark.django_db
def test_a_failing_page_mails_its_report_to_admins(settings, monkeypatch, error_mails):
    monkeypatch.setenv("ADMINS", "Jane Doe <jane@example.com>, ops@example.com")
    settings.ADMINS = env_addresses("ADMINS")  # as app/settings.py reads it
    client = Client(raise_request_exception=False)  # as a visitor: the 500 page, not the exception
    with BROKEN_HOME:
        response = client.get("/")
    assert response.status_code == 500
    [report] = error_mails()
    assert report.to == ["jane@example.com", "ops@example.com"]
    assert "Internal Server Error: /" in report.subject
    assert "the home page broke" in report.body


@pytest.mark.django_db
def test_one_error_is_mailed_once_per_ten_minutes_with_a_count_of_the_rest(error_mails, monkeypatch):
    clock = SimpleNamespace(now=time.monotonic())
    monkeypatch.setattr(app.mail, "time", SimpleNamespace(monotonic=lambda: clock.now))
    client = Client(raise_request_exception=False)
    with BROKEN_HOME:
        assert [client.get("/").status_code for _ in range(5)] == [500] * 5
        assert len(error_mails()) == 1
        clock.now += 9 * 60
        client.get("/")
        assert len(error_mails()) == 1
        clock.now += 60  # ten minutes after the first mail
        client.get("/")
    first, second = error_mails()
    assert "Repeats in the next 10 minutes are only logged." in first.body
    assert second.body.startswith("5 more of this error since the last mail about it")
    with mock.patch("app.views.SiteForm", side_effect=ValueError("the form broke")):
        client.get("/submit/")  # another error: mailed at once
    assert "the form broke" in error_mails()[2].body


@pytest.mark.django_db
def test_a_mail_server_that_never_answers_does_not_delay_the_answer(error_mails, settings):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
            "127.0.0.1",
            silent.getsockname()[1],
            3,
        )
        started = time.monotonic()
        with BROKEN_HOME:
            assert Client(raise_request_exception=False).get("/").status_code == 500
        assert time.monotonic() - started < 2  # the mail waits in its own thread, up to EMAIL_TIMEOUT
        assert sender.wait(10)


@pytest.mark.django_db(transaction=True)
def test_a_database_out_of_reach_is_a_503_page_logged_not_mailed(error_mails, caplog):
    connection.close()  # the request opens its own, to a socket that is not there
    with mock.patch.dict(connection.settings_dict, {"HOST": "/nonexistent", "PORT": 5432}):
        response = Client(raise_request_exception=False).get("/")
    connection.close()
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "cannot reach its database" in response.text
    [line] = [record.getMessage() for record in caplog.records if record.name == "app.database"]
    assert line.startswith("GET /: database unreachable: connection to server on socket")
    assert error_mails() == []


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_query_is_logged_not_mailed(error_mails, settings):
    settings.DB_STATEMENT_TIMEOUT = 1
    connection.close()  # the request's connection is a new one, with the timeout set
    blocker = other_session()
    blocker.autocommit = False
    try:
        query(blocker, "SELECT 1")
        blocker.cursor().execute("LOCK TABLE app_site IN ACCESS EXCLUSIVE MODE")
        assert Client(raise_request_exception=False).get("/", {"q": "x"}).status_code == 503
    finally:
        blocker.rollback()
        blocker.close()
    assert error_mails() == []


@pytest.mark.parametrize(
    "break_the_table",
    [
        # A rollback past a migration that added a NOT NULL column with a Django-only default
        # (Django adds it with the default, then drops the default from the database).
        "ALTER TABLE app_site ADD COLUMN added_later text NOT NULL DEFAULT ''; "
        "ALTER TABLE app_site ALTER COLUMN added_later DROP DEFAULT",
        # A restore that left the id sequence behind: a unique violation, but on the primary key.
        "SELECT setval('app_site_id_seq', (SELECT max(id) FROM app_site), false)",
    ],
)
@pytest.mark.django_db
def test_an_insert_refused_for_another_reason_is_a_reported_fault(break_the_table, error_mails, caplog):
    add_site("Already there")
    with connection.cursor() as cursor:
        cursor.execute(break_the_table)
    client = Client(raise_request_exception=False)  # as a visitor: the 500 page, not the exception
    response = client.post("/submit/", FORM)
    assert response.status_code == 500
    assert "Internal Server Error: /submit/" in [
        r.getMessage() for r in caplog.records if r.name == "django.request"
    ]
    assert "already listed" not in response.text
    [report] = error_mails()  # the traceback reaches ADMINS, as any 500's does
    assert "IntegrityError" in report.body
    assert Site.objects.count() == 1


class SMTPSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept mail: records each message's recipients and text."""

    received = []

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        recipients = []
        self.reply("220 sink")
        for raw in self.rfile:
            command = raw.decode().strip().upper()
            if command.startswith("RCPT TO:"):
                recipients.append(raw.decode().strip()[8:].strip(" <>"))
            if command == "DATA":
                self.reply("354 go on")
                text = b"".join(iter(self.rfile.readline, b".\r\n")).decode()
                self.received.append((recipients, text))
                recipients = []
            elif command == "QUIT":
                self.reply("221 bye")
                return
            self.reply("250 ok")


def test_admins_from_the_environment_get_the_report_of_a_failing_page():
    # A fresh process configured only by the environment, as the container is; the page fails
    # (its query raises) and the report goes out over SMTP.
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPSink) as sink:
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        code = (
            "from unittest import mock; from django.test import Client; from app.models import Site\n"
            "with mock.patch.object(Site.objects, 'filter', side_effect=RuntimeError('the page broke')):\n"
            "    print(Client(raise_request_exception=False).get('/', HTTP_HOST='example.com').status_code)"
        )
        result = manage(
            "shell", "--verbosity", "0", "-c", code,
            ADMINS="Jane Doe <jane@example.com>, ops@example.com",
            EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(sink.server_address[1]), EMAIL_USE_TLS="false",
            HTTPS="false", HSTS_SECONDS="0",
        )  # fmt: skip
        sink.shutdown()
    assert result.stdout.strip() == "500", result.stderr
    [(recipients, text)] = SMTPSink.received
    assert recipients == ["jane@example.com", "ops@example.com"]
    assert "Internal Server Error: /" in text and "the page broke" in text


def test_a_mail_server_that_never_answers_times_out_instead_of_hanging():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        code = "from django.core.mail import send_mail; send_mail('s', 'b', None, ['ops@example.com'])"
        # Without a timeout smtplib waits for the greeting forever: the subprocess timeout ends it.
        result = manage("shell", "-c", code, EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port), EMAIL_TIMEOUT="1")
    assert result.returncode != 0
    assert "timed out" in result.stderr.splitlines()[-1]

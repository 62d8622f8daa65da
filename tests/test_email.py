"""Error reports reach ADMINS by mail, and a dead mail server cannot hold a request."""

import socket
import socketserver
import threading
from unittest import mock

import pytest
from django.core import mail
from django.test import Client

from app.mail import env_addresses
from app.models import Site
from tests.test_settings import assert_one_line_naming, manage


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
def test_a_failing_page_mails_its_report_to_admins(settings, monkeypatch):
    monkeypatch.setenv("ADMINS", "Jane Doe <jane@example.com>, ops@example.com")
    settings.ADMINS = env_addresses("ADMINS")  # as app/settings.py reads it
    client = Client(raise_request_exception=False)  # as a visitor: the 500 page, not the exception
    with mock.patch.object(Site.objects, "filter", side_effect=RuntimeError("the home page broke")):
        response = client.get("/")
    assert response.status_code == 500
    [report] = mail.outbox
    assert report.to == ["jane@example.com", "ops@example.com"]
    assert "Internal Server Error: /" in report.subject
    assert "the home page broke" in report.body


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

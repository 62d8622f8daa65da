"""Admin logins: weak passwords refused, every failed login one log line that fail2ban bans on."""

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from tests.test_settings import manage

REPO = Path(__file__).resolve().parent.parent
FILTER = REPO / "fail2ban" / "filter.d" / "sitekit-admin.conf"
LOGIN = "/admin/login/"


@pytest.mark.parametrize(
    "password",
    ["a", "12345678901234567890", "password", "fourteen-chars", "moderator-moderator"],
)
def test_weak_admin_passwords_are_refused(password):
    user = get_user_model()(username="moderator-moderator", email="moderator@example.com")
    with pytest.raises(ValidationError):
        validate_password(password, user)


def test_a_long_uncommon_passphrase_is_accepted():
    validate_password("correct horse battery staple")


def failed_login_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "app.logins" and r.levelname == "WARNING"]


@pytest.mark.django_db
def test_a_failed_admin_login_is_one_line_naming_the_client(client, caplog):
    get_user_model().objects.create_superuser("moderator", "m@example.com", "correct horse battery staple")
    with caplog.at_level(logging.WARNING):
        response = client.post(
            LOGIN, {"username": "moderator", "password": "wrong"}, REMOTE_ADDR="203.0.113.7"
        )
    assert response.status_code == 200  # the form again, with its error
    assert failed_login_lines(caplog) == ['login failed from 203.0.113.7 for user "moderator"']
    # The right password still logs in, and logs nothing: only failures are lines for fail2ban.
    caplog.clear()
    response = client.post(LOGIN, {"username": "moderator", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert failed_login_lines(caplog) == []


@pytest.mark.django_db
def test_a_crafted_user_name_cannot_forge_a_line_or_an_address(client, caplog):
    crafted = 'x" for user "y\nWARNING app.logins: login failed from 198.51.100.1 for user "z'
    with caplog.at_level(logging.WARNING):
        client.post(LOGIN, {"username": crafted, "password": "wrong"}, REMOTE_ADDR="203.0.113.7")
    [line] = failed_login_lines(caplog)
    assert "\n" not in line
    assert line == f"login failed from 203.0.113.7 for user {json.dumps(crafted)}"


def test_the_line_is_written_even_when_the_log_level_hides_warnings():
    # A fresh process, as in the container: the settings' logging, LOG_LEVEL=ERROR, real stderr.
    code = (
        "from django.contrib.auth.signals import user_login_failed; "
        "from django.test import RequestFactory; "
        "request = RequestFactory().post('/admin/login/', REMOTE_ADDR='203.0.113.7'); "
        "user_login_failed.send('test', credentials={'username': 'admin'}, request=request)"
    )
    result = manage("shell", "-c", code, LOG_LEVEL="ERROR")
    assert result.returncode == 0, result.stderr
    assert 'WARNING app.logins: login failed from 203.0.113.7 for user "admin"' in result.stderr.splitlines()


def docker_log_line(line, time="2026-11-24T12:40:00.123456789Z"):
    """The line as Docker's json-file driver stores it (docker-compose.yml's logging)."""
    return json.dumps({"log": line + "\n", "stream": "stderr", "time": time}, separators=(",", ":"))


@pytest.mark.skipif(not shutil.which("fail2ban-regex"), reason="fail2ban is not installed (.ci/provision)")
def test_the_fail2ban_filter_bans_the_client_and_only_the_client(tmp_path):
    crafted = json.dumps('x" from 198.51.100.1 for user "')
    log = tmp_path / "container-json.log"
    log.write_text(
        "\n".join(
            [
                docker_log_line('WARNING app.logins: login failed from 203.0.113.7 for user "admin"'),
                docker_log_line(f"WARNING app.logins: login failed from 2001:db8::7 for user {crafted}"),
                # Not failures: the access log's line for the same POST, a user name in other lines.
                docker_log_line('INFO uvicorn.access: 198.51.100.2:0 - "POST /admin/login/ HTTP/1.1" 200'),
                docker_log_line("WARNING django.request: Not Found: /login failed from 198.51.100.3"),
            ]
        )
        + "\n"
    )
    # A host clock not on UTC: the "Z" of Docker's time stamp must still be read as UTC, or every
    # line would look hours old (or in the future) and never count towards a ban.
    result = subprocess.run(
        ["fail2ban-regex", "-o", "row", str(log), str(FILTER)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TZ": "Europe/Berlin"},
    )
    assert result.returncode == 0, result.stderr
    rows = [line.strip().rstrip(",") for line in result.stdout.splitlines() if line.strip()]
    matched = [(row.split("'")[1], int(row.split("\t")[1].strip(" ,"))) for row in rows]
    utc_epoch = 1795524000  # 2026-11-24T12:40:00Z
    assert matched == [("203.0.113.7", utc_epoch), ("2001:db8::7", utc_epoch)]


@pytest.mark.django_db
def test_an_ipv6_client_is_logged_as_its_64_and_fail2ban_counts_and_bans_that(client, caplog, tmp_path):
    # One subscriber holds a whole /64: failures from any of its addresses must add up to one ban.
    with caplog.at_level(logging.WARNING):
        for address in ("2001:db8:1:2::7", "2001:db8:1:2:ffff::9", "::ffff:203.0.113.7"):
            client.post(LOGIN, {"username": "admin", "password": "wrong"}, REMOTE_ADDR=address)
    lines = failed_login_lines(caplog)
    assert lines == [
        'login failed from 2001:db8:1:2::/64 for user "admin"',
        'login failed from 2001:db8:1:2::/64 for user "admin"',
        'login failed from 203.0.113.7 for user "admin"',  # IPv4 by way of IPv6: the IPv4 address
    ]
    if shutil.which("fail2ban-regex"):
        log = tmp_path / "container-json.log"
        log.write_text("".join(docker_log_line(f"WARNING app.logins: {line}") + "\n" for line in lines))
        found = subprocess.run(
            ["fail2ban-regex", "-o", "ip", str(log), str(FILTER)], capture_output=True, text=True, timeout=60
        ).stdout.split()
        assert found == ["2001:db8:1:2::/64", "2001:db8:1:2::/64", "203.0.113.7"]
    jail = (REPO / "fail2ban" / "jail.d" / "sitekit-admin.local").read_text()
    assert "\nbanaction = iptables-multiport\n" in jail  # an action whose ban takes a prefix


@pytest.mark.django_db
def test_an_unattended_createsuperuser_refuses_a_weak_password(monkeypatch):
    # Django's --noinput path would take DJANGO_SUPERUSER_PASSWORD as it is.
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "moderator")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "moderator@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "password1")
    with pytest.raises(CommandError, match=r"^DJANGO_SUPERUSER_PASSWORD: This password is too short"):
        call_command("createsuperuser", "--noinput")
    assert not get_user_model().objects.exists()
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct horse battery staple")
    call_command("createsuperuser", "--noinput")
    assert get_user_model().objects.get().check_password("correct horse battery staple")

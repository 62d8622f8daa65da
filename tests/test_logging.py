"""What a request leaves in the log (stderr, which Docker keeps and rotates)."""

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

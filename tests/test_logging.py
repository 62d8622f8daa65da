"""What a request leaves in the log (stderr, which Docker keeps and rotates)."""

import pytest


@pytest.mark.django_db
def test_a_request_for_another_host_name_leaves_no_traceback(client, capsys):
    # Scanners probe by IP address all day. Django logs each as an error with the exception's
    # traceback (~2 KB): with no handler, Python's last-resort handler would print all of it and a
    # scanner could flush the rotated logs. The access log's one line is the record of it.
    for _ in range(3):
        assert client.get("/", HTTP_HOST="203.0.113.1").status_code == 400
    assert capsys.readouterr().err == ""

import json
import logging
from unittest import mock

import pytest
from django.db import OperationalError, connection


def test_healthz_answers_without_touching_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_probes_answer_any_host_name(client, db):
    # Docker's HEALTHCHECK and load balancers use an IP address, not a name in ALLOWED_HOSTS.
    for path in ("/healthz", "/readyz"):
        assert client.get(path, HTTP_HOST="172.17.0.1:8000").status_code == 200
    assert client.get("/", HTTP_HOST="172.17.0.1:8000").status_code == 400  # the site itself does not


def test_head_requests_are_answered(client, db):
    assert client.head("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_runs_one_query_against_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_with_a_reason_when_the_database_is_unreachable(client, caplog):
    refused = OperationalError("connection to server failed: Connection refused\n\tIs the server running?")
    with mock.patch.object(connection, "cursor", side_effect=refused), caplog.at_level(logging.WARNING):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "unavailable", "reason": "database unreachable"}
    assert response["Cache-Control"] == "no-store"
    assert (
        "Connection refused" in caplog.text and "Is the server running" not in caplog.text
    )  # one line in the log
    # Liveness is unaffected: a database outage must not get the container restarted.
    with mock.patch.object(connection, "cursor", side_effect=refused):
        assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_through_nginx_is_an_ordinary_unknown_page(client, django_assert_num_queries):
    # nginx always sets X-Forwarded-For: such a request came from the internet, and gets neither the
    # database's state nor a database connection opened for it.
    with django_assert_num_queries(0):
        response = client.get("/readyz", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert response.status_code == 404
    assert b"status" not in response.content
    # ... and no longer skips the host check.
    proxied = {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert client.get("/readyz", HTTP_HOST="203.0.113.1", **proxied).status_code == 400
    # /healthz stays answered either way: it touches nothing.
    assert client.get("/healthz", **proxied).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "message",
    [
        'connection to server on socket "/x" failed: FATAL:  too many connections for role "sitekit"',
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  sorry, too many clients already',
        "connection failed: FATAL:  remaining connection slots are reserved for roles with the SUPERUSER",
        "server closed the connection unexpectedly\nERROR:  no more connections allowed (max_client_conn)",
    ],
)
def test_readyz_tells_a_database_without_a_free_slot_from_an_unreachable_one(client, caplog, message):
    # A monitor or a deploy must not take "too many visitors" for "the database is down".
    with mock.patch.object(connection, "cursor", side_effect=OperationalError(message)):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "unavailable", "reason": "database busy"}
    assert "readiness check failed: database busy" in caplog.text

"""X-Revision: every answer names the revision of the code that gave it (app/revision.py), which is
how an operator sees a deploy or a rollback take effect (the Dockerfile sets APP_REVISION)."""

import pytest


@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page/"])
def test_every_answer_names_the_revision(client, db, monkeypatch, path):
    monkeypatch.setattr("app.revision.REVISION", "0123456789ab")
    assert client.get(path).headers["X-Revision"] == "0123456789ab"


def test_no_header_when_the_image_names_no_revision(client, db, monkeypatch):
    monkeypatch.setattr("app.revision.REVISION", "")
    assert "X-Revision" not in client.get("/healthz").headers

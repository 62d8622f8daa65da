"""publish_static: the image's collected files copied into the public folder nginx serves, which
every version shares (the entrypoint runs it at each start; see the command's docstring)."""

import errno
import os
import shutil

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def collected(tmp_path, settings):
    """collectstatic into a folder of the test's own, as the Dockerfile does into /app/collected."""
    settings.STATIC_ROOT = tmp_path / "collected"
    call_command("collectstatic", "--noinput", verbosity=0)
    return settings.STATIC_ROOT


@pytest.fixture
def public(tmp_path):
    folder = tmp_path / "public"
    folder.mkdir()
    return folder


def publish(folder):
    call_command("publish_static", str(folder), verbosity=0)


def contents(folder):
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


def test_every_collected_file_but_the_manifest_is_published_readable_by_nginx(collected, public):
    publish(public)
    expected = contents(collected)
    del expected["staticfiles.json"]  # the image's own: nginx has no use for it
    assert contents(public) == expected
    assert {path.stat().st_mode & 0o777 for path in public.rglob("*") if path.is_file()} == {0o644}


def test_hashed_files_are_never_rewritten_unhashed_ones_follow_the_image_and_others_stay(collected, public):
    publish(public)
    hashed = next(public.glob("site/css/site.*.css"))
    hashed.write_text("as nginx serves it")  # a hashed name's content never changes: left alone
    unhashed = public / "site/css/site.css"
    unhashed.write_text("an older version's")
    older = public / "site/css/site.0123456789ab.css"  # a file of a version that ran before
    older.write_text("still linked from pages in browsers")
    publish(public)
    assert hashed.read_text() == "as nginx serves it"
    assert unhashed.read_bytes() == (collected / "site/css/site.css").read_bytes()
    assert older.read_text() == "still linked from pages in browsers"


def test_a_full_disk_stops_with_one_line_no_partial_file_and_unhashed_names_untouched(
    collected, public, monkeypatch
):
    (public / "site/css").mkdir(parents=True)
    (public / "site/css/site.css").write_text("the serving version's")
    copied, copy = [], shutil.copyfileobj

    def disk_fills_up(source, target, *args):
        if len(copied) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        copied.append(source)
        return copy(source, target, *args)

    monkeypatch.setattr("app.management.commands.publish_static.shutil.copyfileobj", disk_fills_up)
    with pytest.raises(
        CommandError, match=r"^cannot publish static files to \S+: No space left on device \(\S+\)$"
    ):
        publish(public)
    assert [path for path in public.rglob(".*")] == []  # the temporary file of the failed copy is gone
    assert (public / "site/css/site.css").read_text() == "the serving version's"  # hashed files go first

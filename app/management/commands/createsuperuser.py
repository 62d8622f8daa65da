"""Django's createsuperuser, minus its quiet exit: without a terminal Django prints "Superuser
creation skipped" and exits 0, so an unattended `make manage ARGS=createsuperuser` looks like it
worked. Here it creates the user from DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD (Django's own
--noinput variables) or fails with one line naming what is missing."""

import os
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
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
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not options.get("interactive", True) and password:
            # Django's --noinput path takes the password as it is: hold it to AUTH_PASSWORD_VALIDATORS,
            # as the prompt and the admin's password forms do.
            fields = {"username": os.environ.get("DJANGO_SUPERUSER_USERNAME", options.get("username") or "")}
            fields["email"] = os.environ.get("DJANGO_SUPERUSER_EMAIL", options.get("email") or "")
            try:
                validate_password(password, get_user_model()(**fields))
            except ValidationError as error:
                raise CommandError(f"DJANGO_SUPERUSER_PASSWORD: {' '.join(error.messages)}") from None
        return super().execute(*args, **options)

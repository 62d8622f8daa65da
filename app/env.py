"""Typed reading of configuration from the environment.

Every reader names the variable in its error, so a bad deployment fails with one line that says
what to fix. ``NAME_FILE`` variants let secrets come from files (Docker secrets) instead of the
environment, where they would show up in ``docker inspect``.
"""

import os

from django.core.exceptions import ImproperlyConfigured


class ConfigError(ImproperlyConfigured):
    """A setting in the environment is missing or malformed."""


_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name, default=_MISSING):
    """The variable's text: from NAME, or from the file named by NAME_FILE."""
    path = os.environ.get(f"{name}_FILE")
    if path and name in os.environ:
        raise ConfigError(f"{name} and {name}_FILE are both set; set only one of them")
    if path:
        try:
            with open(path, encoding="utf-8") as secret:
                return secret.read().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    if name in os.environ:
        return os.environ[name]
    if default is _MISSING:
        raise ConfigError(f"{name} is required but not set")
    return default


def env_str(name, default=_MISSING):
    return _raw(name, default)


def env_bool(name, default=_MISSING):
    """Booleans parsed strictly: "0", "no" and "off" are False; garbage is an error, never True."""
    value = _raw(name, default)
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no, on/off), not {value!r}")


def env_int(name, default=_MISSING, *, minimum=None):
    value = _raw(name, default)
    if isinstance(value, int):
        return value
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def env_list(name, default=_MISSING):
    """A comma-separated list; blanks around items and empty items are ignored."""
    value = _raw(name, default)
    if isinstance(value, list):
        return value
    return [item.strip() for item in value.split(",") if item.strip()]

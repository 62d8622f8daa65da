"""Error reports by mail: who gets them (ADMINS), and how often, sent off the request's path."""

import atexit
import collections
import functools
import logging
import os
import threading
import time
import traceback
from email.errors import InvalidHeaderDefect
from email.headerregistry import HeaderRegistry

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.log import AdminEmailHandler

from app.env import ConfigError, env_str

logger = logging.getLogger(__name__)


def env_addresses(name, default=""):
    """Mail recipients as in a To: header, '"Doe, Jane" <jane@example.com>, ops@example.com': a list
    of (name, address) pairs, as Django's ADMINS takes them. Anything malformed is an error, never
    dropped."""
    value = env_str(name, default)
    # The standard library's RFC 5322 parser: quoted names may hold commas, and it reports what it
    # had to guess at (a missing ">" or comma) as defects, which email.utils.getaddresses keeps quiet.
    header = HeaderRegistry()("To", value)
    pairs = [(address.display_name or address.addr_spec, address.addr_spec) for address in header.addresses]
    try:
        if any(isinstance(defect, InvalidHeaderDefect) for defect in header.defects):
            raise ValidationError("malformed")
        for _, address in pairs:
            validate_email(address)
    except ValidationError:
        raise ConfigError(
            f"{name}: {value!r} is not a list of email addresses (write Name <name@example.com> "
            'or name@example.com, separated by commas; quote a name with a comma: "Doe, Jane" <...>)'
        ) from None
    return pairs


class Sender:
    """One background thread per process that sends queued mails in order; at most `limit` wait."""

    def __init__(self, limit=100):
        self.limit, self.pending, self.pid = limit, collections.deque(), None
        self.changed = threading.Condition()

    def submit(self, job):
        with self.changed:
            if len(self.pending) >= self.limit:
                return False
            if self.pid != os.getpid():  # first use in this process (a forked worker has no thread)
                self.pid = os.getpid()
                threading.Thread(target=self.run, name="error-mail", daemon=True).start()
            self.pending.append(job)
            self.changed.notify_all()
        return True

    def run(self):
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.pending)
                job = self.pending[0]  # stays pending until sent, so wait() waits for it
            try:
                job()
            except Exception:
                logger.exception("an error mail could not be sent")
            with self.changed:
                self.pending.popleft()
                self.changed.notify_all()

    def wait(self, timeout=None):
        """True once every queued mail is sent (tests; and at exit, so a report is not lost)."""
        with self.changed:
            return self.changed.wait_for(lambda: not self.pending, timeout)


sender = Sender()
atexit.register(sender.wait, 10)  # a stopping worker still sends what it queued, within its grace time


def error_key(record):
    """What makes two reports the same error: the exception's type and the path of code that raised
    it (not its message, which often holds values that differ each time)."""
    if record.exc_info and record.exc_info[2]:
        frames = traceback.walk_tb(record.exc_info[2])
        return (
            record.exc_info[0].__qualname__,
            *((frame.f_code.co_filename, line) for frame, line in frames),
        )
    return (record.name, str(record.msg), getattr(record, "status_code", None))


class ThrottledAdminEmailHandler(AdminEmailHandler):
    """Django's error mail, but sent by a background thread (a slow mail server never holds the
    visitor's answer) and at most once per distinct error per `minutes`: the next mail counts the
    ones only logged in between (the log has every one)."""

    def __init__(self, minutes=10, **kwargs):
        super().__init__(**kwargs)
        self.minutes, self.mailed, self.note = minutes, {}, ""

    def emit(self, record):  # logging.Handler.handle holds the handler's lock around this
        if getattr(record, "status_code", None) == 503:
            return  # the site's own page for a database that is slow or away: logged, not mailed
        key, now = error_key(record), time.monotonic()
        last, since = self.mailed.get(key, (None, 0))
        if last is not None and now - last < self.minutes * 60:
            self.mailed[key] = (last, since + 1)
            return
        self.mailed[key] = (now, 0)
        repeats = f"{since} more of this error since the last mail about it (logged, not mailed).\n"
        repeats = repeats if since else ""
        self.note = f"{repeats}Repeats in the next {self.minutes} minutes are only logged.\n\n"
        super().emit(record)

    def send_mail(self, subject, message, *args, **kwargs):
        job = functools.partial(super().send_mail, subject, self.note + message, *args, **kwargs)
        if not sender.submit(job):
            logger.warning("error mail not sent: %d are still waiting for the mail server", sender.limit)

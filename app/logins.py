"""One log line per failed login, in a fixed form that fail2ban can match (fail2ban/).

    WARNING app.logins: login failed from 203.0.113.7 for user "admin"

The address is the client as Django sees it: behind the host's nginx that is the real client,
because the worker takes it from X-Forwarded-For when the request came from the Docker bridge
(docker/gunicorn.conf.py's forwarded_allow_ips), and a client's own X-Forwarded-For is ignored.
The address comes before the user name, which the attacker chooses: quoted and escaped as JSON
(no line breaks, no quotes, ASCII only), it can never make the line name another address.
"""

import json
import logging

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

MAX_USERNAME = 150  # Django's own limit for usernames; longer ones cannot exist


@receiver(user_login_failed, dispatch_uid="app.logins.log_failed_login")
def log_failed_login(sender, credentials, request=None, **kwargs):
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    username = json.dumps(str(credentials.get("username", ""))[:MAX_USERNAME])
    logger.warning("login failed from %s for user %s", address or "unknown", username)

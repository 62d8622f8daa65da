"""One log line per failed login, in a fixed form that fail2ban can match (fail2ban/).

    WARNING app.logins: login failed from 203.0.113.7 for user "admin"
    WARNING app.logins: login failed from 2001:db8:1:2::/64 for user "admin"   (IPv6: the client's /64)

The address is the client as Django sees it: behind the host's nginx that is the real client,
because the worker takes it from X-Forwarded-For when the request came from the Docker bridge
(docker/gunicorn.conf.py's forwarded_allow_ips), and a client's own X-Forwarded-For is ignored.
The address comes before the user name, which the attacker chooses: quoted and escaped as JSON
(no line breaks, no quotes, ASCII only), it can never make the line name another address.
"""

import ipaddress
import json
import logging

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

MAX_USERNAME = 150  # Django's own limit for usernames; longer ones cannot exist


def client(address):
    """Whom fail2ban counts and bans: an IPv4 address, or an IPv6 client's /64 (one subscriber
    holds all of it, as nginx's limits count it), e.g. 2001:db8:1:2::/64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 4:
        return str(ip)
    return str(ip.ipv4_mapped or ipaddress.ip_network(f"{ip}/64", strict=False))


@receiver(user_login_failed, dispatch_uid="app.logins.log_failed_login")
def log_failed_login(sender, credentials, request=None, **kwargs):
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    username = json.dumps(str(credentials.get("username", ""))[:MAX_USERNAME])
    logger.warning("login failed from %s for user %s", client(address), username)

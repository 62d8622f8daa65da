"""What a listing's web address may be, and its one canonical spelling: the field the Site model
stores it in, its normalisation (case, punycode) and the refusals of addresses that deceive."""

import ipaddress
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator
from django.db import models

# Characters that change how text around them is shown, or are not shown at all: Unicode's format
# characters (category Cf), e.g. U+202E RIGHT-TO-LEFT OVERRIDE ("moc.elpmaxe" shown backwards),
# U+200B ZERO WIDTH SPACE, U+2066..U+2069 isolates. A listing is read by people, so none may hide
# in it. Names and descriptions keep ZWNJ and ZWJ (U+200C, U+200D), which Persian, Indic scripts
# and emoji sequences need to be written correctly; web addresses keep none.
JOINERS = {"\u200c", "\u200d"}


def format_characters(text, allowed=frozenset()):
    return [char for char in text if unicodedata.category(char) == "Cf" and char not in allowed]


def reject_format_characters(text, allowed=frozenset()):
    found = format_characters(text, allowed)
    if found:
        char = found[0]
        raise ValidationError(
            "Remove the invisible character U+%(code)04X (%(name)s): it can disguise the text.",
            code="format_character",
            params={"code": ord(char), "name": unicodedata.name(char, "format character")},
        )


def ascii_host(host):
    """The host name as DNS and every browser know it, each label in ASCII (punycode for others).

    "Bücher.example" becomes "xn--bcher-kva.example"; the Cyrillic look-alike "раураl.com"
    becomes "xn--l-7sba6dbr.com" and can no longer pass for paypal.com. Labels are mapped like
    browsers do first (NFKC, lower case: "ＥＸＡＭＰＬＥ" is "example"). A host that cannot be
    converted (a label with symbols or invisible characters) comes back unchanged for the
    validators to reject.
    """
    if host.startswith("["):  # an IPv6 literal
        return host.lower()
    name, colon, port = host.rpartition(":")
    if not port.isdigit():
        name, colon, port = host, "", ""
    labels = []
    for label in name.split("."):
        label = unicodedata.normalize("NFKC", label).lower()
        if not label.isascii():
            if not all(char == "-" or unicodedata.category(char)[0] in "LMN" for char in label):
                return host
            label = "xn--" + label.encode("punycode").decode("ascii")
        labels.append(label)
    return ".".join(labels) + colon + port


def normalize_url(url):
    """The canonical spelling of a web address, so variants of one address share one unique index
    entry, and what is stored is what a browser will visit.

    Lower-cases the scheme and host name (the parts that are case-insensitive), writes the host in
    ASCII (see ascii_host), drops the "#fragment" (never sent to the server) and the lone "/" of a
    bare domain: "HTTPS://Example.COM/#top" becomes "https://example.com". Paths and queries are
    left alone, since servers may treat them case-sensitively. Anything unparsable is returned
    unchanged for the validators to reject.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unbalanced "[" in the host
        return url
    userinfo, at, host = parts.netloc.rpartition("@")  # user:password is case-sensitive
    path = "" if parts.path == "/" else parts.path
    return urlunsplit((parts.scheme.lower(), userinfo + at + ascii_host(host), path, parts.query, ""))


def validate_honest_url(url):
    """What a visitor reads in a listing's address is where the link goes."""
    reject_format_characters(url)
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return  # unparsable: URLValidator says so
    if "@" in netloc:
        # https://www.paypal.com@evil.example/ visits evil.example: the part before "@" is a user
        # name, which no public page needs and which exists here only to mislead.
        raise ValidationError(
            "Remove the part before “@”: a web address with a user name hides the real site.",
            code="userinfo",
        )
    if not netloc.isascii():
        raise ValidationError("The host name has characters no domain name may have.", code="host")


# Names that never leave the visitor's machine or network: localhost (RFC 6761) and /etc/hosts'
# localhost.localdomain, mDNS's .local (RFC 6762), home.arpa (RFC 8375), ICANN's private .internal.
LOCAL_NAMES = ("localhost", "localdomain", "local", "home.arpa", "internal")
# IPv6 addresses whose last 32 bits are an IPv4 address: IPv4-compatible, IPv4-mapped, NAT64.
IPV4_INSIDE = [ipaddress.ip_network(net) for net in ("::/96", "::ffff:0:0/96", "64:ff9b::/96")]


def is_local_address(host):
    """True for an IP literal that is not a public unicast address: loopback, private, link-local,
    unspecified, shared (CGNAT), reserved, multicast - also when wrapped in an IPv6 address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.version == 6:
        # Where the connection goes is the IPv4 address inside: ::ffff:127.0.0.1 is 127.0.0.1.
        inside = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for net in IPV4_INSIDE if ip in net]
        ip = ip.sixtofour or (inside[0] if inside else ip)
    return not ip.is_global or ip.is_multicast or getattr(ip, "is_site_local", False)  # fec0::/10


def validate_public_host(url):
    """A listing links to a public site: never to the visitor's own machine or network, where a
    click would reach their router, printer or a development server (http://localhost:8000/admin/)."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return  # unparsable: URLValidator says so
    named_local = any(host == name or host.endswith("." + name) for name in LOCAL_NAMES)
    if named_local or is_local_address(host):
        raise ValidationError(
            "Enter the address of a public site: this one leads to the visitor's own computer or network.",
            code="local_host",
        )


class WebAddressField(models.URLField):
    """An http(s) URL, stored normalised (see normalize_url) however the row is saved."""

    default_validators = [
        URLValidator(schemes=["http", "https"]),
        # Control characters are never valid in a URL; URLValidator only rejects some of them.
        RegexValidator(r"[\x00-\x1f\x7f]", inverse_match=True),
        validate_honest_url,
        validate_public_host,
    ]

    def to_python(self, value):
        # full_clean() (forms, the admin) validates the normalised value: length and uniqueness
        # checks see exactly what will be stored.
        value = super().to_python(value)
        return normalize_url(value) if value else value

    def pre_save(self, model_instance, add):
        # Also on plain save() and objects.create(), which skip validation.
        value = normalize_url(getattr(model_instance, self.attname))
        setattr(model_instance, self.attname, value)
        return value

    def formfield(self, **kwargs):
        # "example.com" typed without a scheme becomes https://example.com (Django 6's default).
        return super().formfield(**{"assume_scheme": "https", **kwargs})

"""The directory's one model: a website someone submitted, published once a moderator approves it."""

from urllib.parse import urlsplit, urlunsplit

from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.utils import timezone


def normalize_url(url):
    """The canonical spelling of a web address, so trivial variants share one unique index entry.

    Lower-cases the scheme and host name (the parts that are case-insensitive), drops the
    "#fragment" (never sent to the server) and the lone "/" of a bare domain:
    "HTTPS://Example.COM/#top" becomes "https://example.com". Paths and queries are left alone,
    since servers may treat them case-sensitively. Anything unparsable is returned unchanged for
    the validators to reject.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unbalanced "[" in the host
        return url
    userinfo, at, host = parts.netloc.rpartition("@")  # user:password is case-sensitive
    path = "" if parts.path == "/" else parts.path
    return urlunsplit((parts.scheme.lower(), userinfo + at + host.lower(), path, parts.query, ""))


class WebAddressField(models.URLField):
    """An http(s) URL, stored normalised (see normalize_url) however the row is saved."""

    default_validators = [
        URLValidator(schemes=["http", "https"]),
        # Control characters are never valid in a URL; URLValidator only rejects some of them.
        RegexValidator(r"[\x00-\x1f\x7f]", inverse_match=True),
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


class Site(models.Model):
    name = models.CharField(max_length=100)
    url = WebAddressField(
        "web address",
        unique=True,
        error_messages={
            "invalid": "Enter a full web address starting with http:// or https://.",
            "unique": "This site is already listed or waiting for review.",
        },
    )
    description = models.TextField(
        max_length=500, help_text="What the site does and who it is for, in a sentence or two."
    )
    contact_email = models.EmailField(
        blank=True, help_text="Never published; only used if we have a question about the listing."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    approved = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, editable=False)

    class Meta:
        # id breaks ties between equal timestamps, so pagination never shows a row twice.
        ordering = ["-created_at", "-id"]
        indexes = [
            # The home page: approved sites, newest first. Partial, so pending rows cost nothing.
            models.Index(
                fields=["-created_at", "-id"],
                condition=models.Q(approved=True),
                name="site_approved_newest_idx",
            ),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        # approved_at follows the flag however it changes: approve(), or the admin's checkbox.
        if not self.approved:
            self.approved_at = None
        elif self.approved_at is None:
            self.approved_at = timezone.now()
        super().save(*args, **kwargs)

    def approve(self):
        """Publish the site. Approving twice keeps the time of the first approval."""
        self.approved = True
        self.save(update_fields=["approved", "approved_at"])

    @property
    def domain(self):
        """The host name, shown on the site's card."""
        return urlsplit(self.url).hostname or self.url

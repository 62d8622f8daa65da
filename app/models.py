"""The directory's one model: a website someone submitted, published once a moderator approves it."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import connection, models
from django.utils import timezone

from app.web_address import JOINERS, WebAddressField, normalize_url, reject_format_characters


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

    def clean(self):
        # Here rather than as field validators, which would need a migration; forms and the admin
        # run it alike.
        errors = {}
        for field in ("name", "description"):
            try:
                reject_format_characters(getattr(self, field), allowed=JOINERS)
            except ValidationError as error:
                errors[field] = error
        if errors:
            raise ValidationError(errors)

    def approve(self):
        """Publish the site. Approving twice keeps the time of the first approval."""
        self.approved = True
        self.save(update_fields=["approved", "approved_at"])

    @property
    def domain(self):
        """The host name, shown on the site's card: in ASCII, even for a row stored before
        normalize_url wrote hosts that way, so a look-alike never shows in Unicode."""
        return urlsplit(normalize_url(self.url)).hostname or self.url


UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE; the constraint it names tells which one


def is_duplicate_url(error):
    """True when an IntegrityError is the unique index on Site.url refusing a second row, and only
    then: a NOT NULL column the code does not know (a rollback past a migration) or a primary key
    behind its sequence (a restore) is a fault to report, not a duplicate to tell the visitor."""
    cause, table = error.__cause__, Site._meta.db_table
    if connection.vendor == "sqlite":  # the trial: SQLite names the column, not the constraint
        return str(cause) == f"UNIQUE constraint failed: {table}.url"
    if getattr(cause, "pgcode", None) != UNIQUE_VIOLATION:
        return False
    with connection.cursor() as cursor:  # the index's name is Django's to choose: look it up
        constraints = connection.introspection.get_constraints(cursor, table)
    found = constraints.get(cause.diag.constraint_name, {})
    return found.get("unique", False) and found.get("columns") == ["url"]

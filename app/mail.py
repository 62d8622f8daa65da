"""Error reports by mail: who gets them (ADMINS)."""

from email.errors import InvalidHeaderDefect
from email.headerregistry import HeaderRegistry

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from app.env import ConfigError, env_str


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

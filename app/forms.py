import re

from django import forms

from app.models import Site

# C0 and C1 control characters except tab and line feed (so "\r\n" line breaks become "\n"):
# invisible in a page, and PostgreSQL rejects NUL in text outright, so they are dropped before
# anything is validated or stored.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control_characters(text):
    return CONTROL_CHARACTERS.sub("", text)


class PlainTextField(forms.CharField):
    """A CharField that drops control characters first, so "required" and max_length judge the
    text that will be stored (a name of only control characters is an empty name)."""

    def to_python(self, value):
        return super().to_python(strip_control_characters(value or ""))


class SiteForm(forms.ModelForm):
    # Honeypot against bots, which fill in every input they find. People never see it: it is moved
    # off-screen by CSS (not type="hidden", which bots skip) and out of the tab order. "homepage"
    # is tempting to a bot but matches nothing browsers autofill.
    homepage = forms.CharField(
        required=False,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    class Meta:
        model = Site
        fields = ["name", "url", "description", "contact_email"]
        field_classes = {"name": PlainTextField, "description": PlainTextField}
        labels = {"name": "Site name", "contact_email": "Contact email (optional)"}
        help_texts = {"url": "The home page, e.g. https://www.example.com"}
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}

    def is_spam(self):
        """True when the honeypot was filled in: the caller should pretend success."""
        return bool(self.data.get("homepage"))

    def clean_name(self):
        # A name is one line: tabs, newlines and runs of spaces become single spaces.
        return " ".join(self.cleaned_data["name"].split())

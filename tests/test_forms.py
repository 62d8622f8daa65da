from urllib.parse import urlsplit

import pytest
from django.utils.html import escape
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase
from hypothesis.provisional import urls

from app.forms import SiteForm
from app.models import Site
from app.web_address import JOINERS, format_characters

VALID = {"name": "Example", "url": "https://example.com", "description": "An example.", "contact_email": ""}
HOSTILE = [
    "\x00",
    "a\x00b",
    "javascript:alert(1)",
    "JaVaScRiPt://example.com/%0aalert(1)",
    "<script>alert('x')</script>",
    "' OR 1=1 --",
    "x" * 100_000,
    "🦄 Ünïcödé ‮ right-to-left",
    "\r\n\t \u2028",
]


def form_errors(**changes):
    form = SiteForm({**VALID, **changes})
    assert not form.is_valid()
    return form.errors


@pytest.mark.django_db
def test_a_valid_submission_is_saved_unapproved_with_a_normalised_url():
    form = SiteForm({**VALID, "url": "HTTPS://Example.com/", "contact_email": "me@example.com"})
    assert form.is_valid(), form.errors
    site = form.save()
    assert (site.url, site.approved, site.contact_email) == ("https://example.com", False, "me@example.com")


@pytest.mark.django_db
def test_an_address_without_a_scheme_is_taken_as_https():
    form = SiteForm({**VALID, "url": "example.com"})
    assert form.is_valid(), form.errors
    assert form.save().url == "https://example.com"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://example.com", "not a url", "https://exa\x00mple.com"]
)
def test_only_web_addresses_are_accepted(url):
    assert "url" in form_errors(url=url)


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "limit"), [("name", 100), ("description", 500), ("url", 200)])
def test_lengths_are_limited(field, limit):
    value = "https://example.com/" + "a" * (limit - 20) if field == "url" else "a" * limit
    assert SiteForm({**VALID, field: value}).is_valid()
    assert field in form_errors(**{field: value + "a"})


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["name", "url", "description"])
def test_required_fields(field):
    assert form_errors(**{field: "  "})[field] == ["This field is required."]


@pytest.mark.django_db
def test_a_listed_url_gets_a_friendly_error_on_the_url_field():
    Site.objects.create(name="First", url="https://example.com", description="x")
    errors = form_errors(url="https://EXAMPLE.com/#home")
    assert errors == {"url": ["This site is already listed or waiting for review."]}


@pytest.mark.django_db
def test_control_characters_are_dropped_but_line_breaks_in_descriptions_are_kept():
    form = SiteForm({**VALID, "name": "Ex\x00am\x1bple\n\tsite", "description": "One\x00\r\ntwo\x85"})
    assert form.is_valid(), form.errors
    site = form.save()
    assert (site.name, site.description) == ("Example site", "One\ntwo")


@pytest.mark.django_db
def test_a_name_of_only_control_characters_is_empty():
    assert form_errors(name="\x00\x01\x7f")["name"] == ["This field is required."]


@pytest.mark.django_db
def test_a_nul_byte_in_the_email_is_an_error():
    assert "contact_email" in form_errors(contact_email="me@exa\x00mple.com")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"url": "https://www.paypal.com@evil.example/login"},
            "url",
            "Remove the part before “@”: a web address with a user name hides the real site.",
        ),
        (
            {"url": "https://example.com/\u202egpj.exe"},
            "url",
            "Remove the invisible character U+202E (RIGHT-TO-LEFT OVERRIDE): it can disguise the text.",
        ),
        (
            {"url": "http://localhost:6868/admin/"},
            "url",
            "Enter the address of a public site: this one leads to the visitor's own computer or network.",
        ),
        (
            {"name": "Invoice \u202egnp.exe"},
            "name",
            "Remove the invisible character U+202E (RIGHT-TO-LEFT OVERRIDE): it can disguise the text.",
        ),
    ],
)
def test_deceptive_submissions_are_refused_with_the_reason(changes, field, message):
    assert form_errors(**changes)[field] == [message]


@pytest.mark.django_db
def test_a_look_alike_host_is_saved_and_listed_as_punycode():
    form = SiteForm({**VALID, "url": "https://раураl.com/login"})  # Cyrillic, looks like paypal.com
    assert form.is_valid(), form.errors
    site = form.save()
    assert (site.url, site.domain) == ("https://xn--l-7sba6dbr.com/login", "xn--l-7sba6dbr.com")


def test_the_honeypot_marks_a_submission_as_spam():
    assert not SiteForm(VALID).is_spam()
    assert SiteForm({**VALID, "homepage": "http://spam.example"}).is_spam()


any_text = st.one_of(st.text(), st.sampled_from(HOSTILE))


class SubmissionPropertyTests(TestCase):
    """Whatever arrives, the form answers valid or invalid, and what it accepts, the site can show.

    (hypothesis' TestCase rolls the database back after every example.)
    """

    @settings(max_examples=300, deadline=None)
    @given(
        name=any_text,
        url=st.one_of(any_text, urls()),
        description=any_text,
        contact_email=st.one_of(st.just(""), st.emails(), any_text),
    )
    @example(
        name="<b>Bold</b> & co",
        url="https://example.com",
        description="<script>alert(1)</script>",
        contact_email="",
    )
    @example(name="Nul\x00", url="https://example.com/\x00", description="\x00", contact_email="\x00")
    @example(name="🦄", url="https://bücher.example/ü", description="x" * 500, contact_email="")
    def test_any_submission_is_accepted_or_rejected_never_crashes(self, **data):
        form = SiteForm(data)
        if not form.is_valid():
            assert form.errors and not Site.objects.exists()
            return
        site = form.save()
        site.approve()
        site.refresh_from_db()
        assert site.url.startswith(("http://", "https://"))
        # Nothing deceptive got through: the host is ASCII with no user name before it, and no
        # invisible or direction-changing character hides anywhere (ZWNJ/ZWJ aside in text).
        netloc = urlsplit(site.url).netloc
        assert netloc.isascii() and "@" not in netloc
        assert not format_characters(site.url)
        assert not format_characters(site.name + site.description, allowed=JOINERS)
        assert "\x00" not in site.name + site.description + site.contact_email
        for query in ["", site.name]:
            response = self.client.get("/", {"q": query})
            assert response.status_code == 200
            assert escape(site.name) in response.text

"""The rules of a listing's web address (app/web_address.py): http(s) only, one canonical spelling,
nothing that disguises where a link goes (the visitor's own machine or network: test_local_addresses.py)."""

import unicodedata
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.provisional import urls

from app.models import Site
from app.web_address import normalize_url
from tests.test_models import make_site

DUPLICATE = "This site is already listed or waiting for review."


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "data:text/html,<script>alert(1)</script>",
        "example.com",
        "https://",
        "https://exa mple.com",
        "https://example.com/\x01",
    ],
)
def test_only_http_and_https_web_addresses_are_valid(url):
    with pytest.raises(ValidationError) as error:
        make_site(url=url).clean_fields()
    assert error.value.message_dict["url"] == ["Enter a full web address starting with http:// or https://."]


def test_web_addresses_are_limited_to_200_characters():
    make_site(url="https://example.com/" + "a" * 180).clean_fields()
    with pytest.raises(ValidationError, match="at most 200 characters"):
        make_site(url="https://example.com/" + "a" * 181).clean_fields()


@pytest.mark.parametrize(
    "url", ["http://example.com", "https://example.com/blog/?page=2", "https://bücher.example"]
)
def test_http_and_https_web_addresses_are_valid(url):
    make_site(url=url).clean_fields()


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("HTTPS://Example.COM/", "https://example.com"),
        ("https://example.com/#top", "https://example.com"),
        ("  https://example.com  ", "https://example.com"),
        ("https://Example.com:8443/", "https://example.com:8443"),
        ("https://example.com/Blog/", "https://example.com/Blog/"),  # paths may be case-sensitive
        ("https://example.com/?q=Django", "https://example.com?q=Django"),
        ("https://Me:Secret@Example.com", "https://Me:Secret@example.com"),
    ],
)
def test_normalize_url(url, normalised):
    assert normalize_url(url) == normalised


@given(st.one_of(st.text(), st.builds("{}#{}".format, urls(), st.text())))
def test_normalize_url_takes_any_text_and_never_keeps_a_fragment(text):
    """Whatever is typed into the form reaches the validators: normalising never raises, and it
    either leaves the text alone (unparsable: the validators reject it) or drops any #fragment."""
    normalised = normalize_url(text)
    assert normalised == text or "#" not in normalised


@given(urls())
def test_normalize_url_is_idempotent(url):
    once = normalize_url(url)
    assert normalize_url(once) == once


@pytest.mark.django_db
def test_urls_are_stored_normalised_even_without_validation():
    site = Site.objects.create(name="Example", url="HTTPS://Example.COM/", description="An example.")
    site.refresh_from_db()
    assert site.url == "https://example.com"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "variant", ["https://example.com", "https://EXAMPLE.com/", "HTTPS://example.com/#about"]
)
def test_trivial_variants_of_a_listed_url_are_duplicates(variant):
    make_site().save()
    with pytest.raises(ValidationError) as error:
        make_site(url=variant).full_clean()
    assert error.value.message_dict["url"] == [DUPLICATE]
    with pytest.raises(IntegrityError), transaction.atomic():
        make_site(url=variant).save()  # the database enforces it too, for writes that skip validation


@pytest.mark.django_db
def test_different_pages_of_one_site_are_not_duplicates():
    make_site().save()
    make_site(url="https://example.com/blog").full_clean()


# --- Deceptive addresses (what a visitor reads must be where the link goes) --------------------
USERINFO = "Remove the part before “@”: a web address with a user name hides the real site."


@pytest.mark.parametrize(
    "url",
    [
        "https://www.paypal.com@evil.example/login",  # visits evil.example
        "https://www.paypal.com:login@evil.example",
        "https://evil.example\\@paypal.com",  # browsers read "\" as "/": visits evil.example
        "https://user@example.com",
    ],
)
def test_a_user_name_in_a_web_address_is_refused(url):
    with pytest.raises(ValidationError) as error:
        make_site(url=url).clean_fields()
    assert USERINFO in error.value.message_dict["url"]


@pytest.mark.parametrize(
    ("url", "character"),
    [
        ("https://example.com/\u202egpj.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("https://exa\u202emple.com", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("https://example.com/?q=\u2066x\u2069", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
        ("https://pay\u200bpal.com", "U+200B (ZERO WIDTH SPACE)"),
        ("https://example.com/\u200dx", "U+200D (ZERO WIDTH JOINER)"),
        ("https://\ufeffexample.com", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
        ("https://example.com/\u200f", "U+200F (RIGHT-TO-LEFT MARK)"),
    ],
)
def test_invisible_and_direction_changing_characters_in_a_web_address_are_refused(url, character):
    with pytest.raises(ValidationError) as error:
        make_site(url=url).clean_fields()
    message = f"Remove the invisible character {character}: it can disguise the text."
    assert message in error.value.message_dict["url"]


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        # Whole-script and mixed-script look-alikes of paypal.com: stored (and so shown) as
        # punycode, which no one mistakes for the real name.
        ("https://раураl.com", "https://xn--l-7sba6dbr.com"),  # Cyrillic р, а, у
        ("https://pаypal.com/login", "https://xn--pypal-4ve.com/login"),  # one Cyrillic а
        ("https://Bücher.example/ü", "https://xn--bcher-kva.example/ü"),  # paths stay as they are
        ("https://straße.de:8443", "https://xn--strae-oqa.de:8443"),  # ß stays ß, as browsers do
        ("https://ＰＡＹＰＡＬ.com", "https://paypal.com"),  # full-width letters are plain ones
    ],
)
def test_host_names_are_stored_in_ascii(url, stored):
    assert normalize_url(url) == stored
    site = make_site(url=url)
    site.clean_fields()
    assert site.url == stored
    assert site.domain == urlsplit(stored).hostname


@pytest.mark.django_db
def test_the_unicode_and_the_punycode_spelling_of_a_host_are_one_site():
    make_site(url="https://xn--bcher-kva.example").save()
    with pytest.raises(ValidationError) as error:
        make_site(url="https://BÜCHER.example/").full_clean()
    assert error.value.message_dict["url"] == [DUPLICATE]


# Latin, Cyrillic look-alikes, full-width letters, "@", "\", ":" and invisible characters.
LOOK_ALIKES = "paylоаур.-ü@\\:Ｐ\u202e\u200b\u200d"


@given(st.one_of(st.text(), st.text(alphabet=LOOK_ALIKES, min_size=1)), st.text())
def test_whatever_address_is_accepted_shows_where_it_leads(host, rest):
    site = make_site(url=f"https://{host}.com/{rest}")
    try:
        site.clean_fields()
    except ValidationError:
        return
    netloc = urlsplit(site.url).netloc
    assert netloc.isascii() and "@" not in netloc and "\\" not in netloc
    assert not [char for char in site.url if unicodedata.category(char) == "Cf"]

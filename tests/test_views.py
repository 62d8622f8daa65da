import sqlite3
from itertools import count
from types import SimpleNamespace
from unittest import mock

import hypothesis
import pytest
from django.db import IntegrityError, OperationalError, connection
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from app.forms import SiteForm
from app.models import Site, is_duplicate_url

pytestmark = pytest.mark.django_db
FORM = {"name": "Example", "url": "https://example.com", "description": "An example.", "contact_email": ""}
numbers = count()  # unique URLs for add_site()


def add_site(name, approved=True, description="A site."):
    site = Site.objects.create(name=name, url=f"https://site{next(numbers)}.example", description=description)
    if approved:
        site.approve()
    return site


def names(response):
    return [site.name for site in response.context["page"].object_list]


def test_home_lists_approved_sites_newest_first_and_hides_pending_ones(client):
    add_site("Old"), add_site("Pending", approved=False), add_site("New")
    response = client.get("/")
    assert response.status_code == 200
    assert names(response) == ["New", "Old"]
    assert "Pending" not in response.text


def test_an_empty_directory_invites_a_submission(client):
    response = client.get("/")
    assert "No sites listed yet" in response.text
    assert 'href="/submit/"' in response.text


def test_names_and_descriptions_are_escaped(client):
    add_site("<script>alert(1)</script>", description="<img src=x onerror=alert(2)>")
    text = client.get("/").text
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(2)&gt;" in text


@pytest.fixture
def seven_sites(settings):  # pytest-django's settings fixture: restored after the test
    settings.SITES_PER_PAGE = 3
    return [add_site(f"Site {n}") for n in range(7)]  # newest is "Site 6"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("1", ["Site 6", "Site 5", "Site 4"]),
        ("3", ["Site 0"]),
        ("", ["Site 6", "Site 5", "Site 4"]),
        ("abc", ["Site 6", "Site 5", "Site 4"]),  # not a number: the first page
        ("99999999999999999999999", ["Site 0"]),  # past the end: the last page
        ("0", ["Site 0"]),
        ("-1", ["Site 0"]),
        ("1.5", ["Site 6", "Site 5", "Site 4"]),
    ],
)
def test_pagination_never_fails(client, seven_sites, page, expected):
    response = client.get("/", {"page": page})
    assert response.status_code == 200
    assert names(response) == expected


def test_page_links_keep_the_search(client, seven_sites):
    text = client.get("/", {"q": "Site", "page": "2"}).text
    assert 'href="?q=Site&amp;page=1"' in text and 'href="?q=Site&amp;page=3"' in text
    assert "Page 2 of 3" in text


def test_search_matches_name_or_description_ignoring_case(client):
    add_site("Django Girls", description="Workshops for women")
    add_site("Instagram", description="Photo sharing, on DJANGO")
    add_site("Unrelated", description="Nothing to see")
    response = client.get("/", {"q": "django"})
    assert names(response) == ["Instagram", "Django Girls"]
    assert "2 sites matching “django”" in response.text
    assert names(client.get("/", {"q": "WORKSHOP"})) == ["Django Girls"]


def test_search_does_not_show_pending_sites(client):
    add_site("Pending Django site", approved=False)
    assert names(client.get("/", {"q": "Django"})) == []


def test_a_search_without_results_says_so_and_offers_to_clear_it(client):
    add_site("Example")
    response = client.get("/", {"q": "<nothing>"})
    assert "No sites match “&lt;nothing&gt;”" in response.text
    assert '<a href="/">clear the search</a>' in response.text


def test_like_wildcards_in_a_search_are_literal(client):
    add_site("100% Django"), add_site("Plain")
    assert names(client.get("/", {"q": "%"})) == ["100% Django"]
    assert names(client.get("/", {"q": "_"})) == []


class SearchPropertyTests(TestCase):
    @hypothesis.settings(max_examples=100, deadline=None)
    @given(q=st.text(), page=st.text())
    def test_any_query_and_page_are_answered(self, q, page):
        add_site("Example")
        assert self.client.get("/", {"q": q, "page": page}).status_code == 200

    def test_huge_and_nul_queries_are_answered(self):
        for q in ["x" * 100_000, "\x00", "django\x00"]:
            assert self.client.get("/", {"q": q}).status_code == 200


def test_submitting_a_site_redirects_to_thanks_and_waits_for_moderation(client):
    response = client.post("/submit/", FORM)
    assert response.status_code == 302 and response.url == "/submit/thanks/"
    site = Site.objects.get()
    assert (site.name, site.approved) == ("Example", False)
    assert "Example" not in client.get("/").text
    assert "review" in client.get(response.url).text


def test_an_invalid_submission_shows_the_form_again_with_errors(client):
    response = client.post("/submit/", {**FORM, "url": "javascript:alert(1)", "name": ""})
    assert response.status_code == 200
    assert "Please correct the errors below" in response.text
    assert 'aria-invalid="true"' in response.text
    assert not Site.objects.exists()


def test_a_nul_byte_is_never_a_server_error(client):
    response = client.post("/submit/", {**FORM, "url": "https://example.com/\x00", "name": "\x00"})
    assert response.status_code == 200
    assert not Site.objects.exists()


def test_a_duplicate_url_is_a_friendly_error(client):
    Site.objects.create(**{**FORM, "name": "First"})
    response = client.post("/submit/", {**FORM, "url": "HTTPS://Example.com/"})
    assert response.status_code == 200
    assert response.context["form"].errors["url"] == ["This site is already listed or waiting for review."]
    assert Site.objects.count() == 1


def test_a_duplicate_url_submitted_concurrently_is_the_same_friendly_error(client):
    # Simulate the race: the other request inserts its row just after our uniqueness check passed.
    def check_then_lose_the_race(form):
        original_validate_unique(form)
        Site.objects.create(**{**FORM, "name": "Winner"})

    original_validate_unique = SiteForm.validate_unique
    with mock.patch.object(SiteForm, "validate_unique", check_then_lose_the_race):
        response = client.post("/submit/", FORM)
    assert response.status_code == 200
    assert response.context["form"].errors["url"] == ["This site is already listed or waiting for review."]
    assert list(Site.objects.values_list("name", flat=True)) == ["Winner"]


@pytest.mark.parametrize("duplicate", [True, False])
def test_the_trials_sqlite_tells_a_duplicate_url_from_other_faults(duplicate):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE app_site (url text UNIQUE, name text NOT NULL)")
    db.execute("INSERT INTO app_site VALUES ('https://example.com', 'Example')")
    with pytest.raises(sqlite3.IntegrityError) as refused:
        db.execute(
            "INSERT INTO app_site VALUES (?, ?)",
            ("https://example.com", "Again") if duplicate else ("x", None),
        )
    error = IntegrityError(*refused.value.args)
    error.__cause__ = refused.value  # as Django's database wrapper raises it
    with mock.patch("app.models.connection", SimpleNamespace(vendor="sqlite")):
        assert is_duplicate_url(error) is duplicate


def test_the_honeypot_pretends_success_but_saves_nothing(client):
    response = client.post("/submit/", {**FORM, "homepage": "https://spam.example"})
    assert response.status_code == 302 and response.url == "/submit/thanks/"
    assert not Site.objects.exists()


def test_the_honeypot_is_rendered_but_hidden_from_people(client):
    text = client.get("/submit/").text
    assert '<div class="hp" aria-hidden="true">' in text
    assert 'name="homepage"' in text and 'tabindex="-1"' in text


def test_submitting_requires_a_csrf_token():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/submit/", FORM).status_code == 403
    client.get("/submit/")  # sets the CSRF cookie, as a browser visit does
    token = client.cookies["csrftoken"].value
    assert client.post("/submit/", {**FORM, "csrfmiddlewaretoken": token}).status_code == 302


def test_unknown_pages_get_the_site_404_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.text and 'href="/submit/"' in response.text


def test_with_the_database_down_visitors_get_the_500_page(client):
    # 500.html must render with no database: it is what people see when the database is the problem.
    client.raise_request_exception = False
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("connection refused")):
        response = client.get("/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from app.models import Site


def make_site(**fields):
    return Site(**{"name": "Example", "url": "https://example.com", "description": "An example.", **fields})


@pytest.mark.django_db
def test_new_sites_wait_for_approval():
    site = Site.objects.create(name="Example", url="https://example.com", description="An example.")
    assert (site.approved, site.approved_at) == (False, None)


@pytest.mark.django_db
def test_approve_publishes_the_site_and_records_when():
    site = Site.objects.create(name="Example", url="https://example.com", description="An example.")
    before = timezone.now()
    site.approve()
    site.refresh_from_db()
    assert site.approved
    assert before <= site.approved_at <= timezone.now()


@pytest.mark.django_db
def test_approving_twice_keeps_the_first_approval_time():
    site = Site.objects.create(name="Example", url="https://example.com", description="An example.")
    site.approve()
    first = site.approved_at
    site.approve()
    site.refresh_from_db()
    assert site.approved_at == first


@pytest.mark.django_db
def test_approved_at_follows_the_flag_when_it_is_set_directly():
    site = Site.objects.create(name="Example", url="https://example.com", description="An example.")
    site.approved = True  # as the admin's checkbox does
    site.save()
    assert site.approved_at is not None
    site.approved = False
    site.save()
    site.refresh_from_db()
    assert site.approved_at is None


@pytest.mark.django_db
def test_sites_are_ordered_newest_first():
    sites = [Site.objects.create(name=f"{n}", url=f"https://{n}.example", description="x") for n in range(3)]
    Site.objects.filter(pk=sites[0].pk).update(created_at=timezone.now() + timedelta(days=1))
    assert list(Site.objects.all()) == [sites[0], sites[2], sites[1]]


def test_str_and_domain():
    site = make_site(name="Example shop", url="https://user:pw@shop.example.com:8443/en/")
    assert str(site) == "Example shop"
    assert site.domain == "shop.example.com"


@pytest.mark.django_db
def test_a_row_stored_with_a_unicode_host_is_shown_in_ascii():
    site = Site.objects.create(name="Old", url="https://example.com", description="x")
    Site.objects.filter(pk=site.pk).update(url="https://раураl.com")  # as before hosts were converted
    site.refresh_from_db()
    assert site.domain == "xn--l-7sba6dbr.com"


# --- Text a visitor reads: nothing invisible may disguise it ------------------------------------
@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("character", ["\u202e", "\u202d", "\u2067", "\u200b", "\u2060", "\ufeff", "\u00ad"])
def test_invisible_and_direction_changing_characters_in_text_are_refused(field, character):
    with pytest.raises(ValidationError) as error:
        make_site(**{field: f"Pay{character}pal"}).full_clean(validate_unique=False)
    assert f"U+{ord(character):04X}" in error.value.message_dict[field][0]


def test_joiners_that_scripts_and_emoji_need_are_kept_in_text():
    site = make_site(name="می\u200cخواهم", description="Family \U0001f468\u200d\U0001f469\u200d\U0001f467")
    site.full_clean(validate_unique=False)

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from app.models import Site

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/app/site/"


@pytest.fixture
def superuser_client(client):
    get_user_model().objects.create_superuser("moderator", "moderator@example.com", "a-long-test-password")
    assert client.login(username="moderator", password="a-long-test-password")
    return client


def add_site(n, approved=False):
    site = Site.objects.create(name=f"Site {n}", url=f"https://site{n}.example", description="A site.")
    if approved:
        site.approve()
    return site


def test_the_admin_requires_a_login(client):
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_the_approve_action_publishes_the_selected_sites(superuser_client):
    chosen, other = [add_site(1), add_site(2)], add_site(3)
    before = timezone.now()
    response = superuser_client.post(
        CHANGELIST, {"action": "approve_sites", "_selected_action": [site.pk for site in chosen]}, follow=True
    )
    assert response.status_code == 200
    assert "Approved 2 sites." in [str(message) for message in response.context["messages"]]
    for site in chosen:
        site.refresh_from_db()
        assert site.approved and before <= site.approved_at <= timezone.now()
    other.refresh_from_db()
    assert (other.approved, other.approved_at) == (False, None)
    assert "Site 1" in superuser_client.get("/").text


def test_the_approve_action_counts_only_sites_it_changed(superuser_client):
    already = add_site(1, approved=True)
    first_approval = already.approved_at
    pending = add_site(2)
    response = superuser_client.post(
        CHANGELIST, {"action": "approve_sites", "_selected_action": [already.pk, pending.pk]}, follow=True
    )
    assert "Approved 1 site." in [str(message) for message in response.context["messages"]]
    already.refresh_from_db()
    assert already.approved_at == first_approval


def test_the_changelist_filters_and_searches(superuser_client):
    add_site(1, approved=True), add_site(2)
    response = superuser_client.get(CHANGELIST, {"approved__exact": "0"})
    assert [site.name for site in response.context["cl"].result_list] == ["Site 2"]
    response = superuser_client.get(CHANGELIST, {"q": "site1.example"})
    assert [site.name for site in response.context["cl"].result_list] == ["Site 1"]


def test_timestamps_are_shown_but_not_editable(superuser_client):
    site = add_site(1)
    response = superuser_client.get(f"{CHANGELIST}{site.pk}/change/")
    assert response.status_code == 200
    fields = response.context["adminform"].form.fields
    assert "created_at" not in fields and "approved_at" not in fields
    assert {"created_at", "approved_at"} <= set(response.context["adminform"].readonly_fields)

from django.conf import settings
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.shortcuts import redirect, render

from app.forms import SiteForm, strip_control_characters
from app.models import Site, is_duplicate_url

MAX_QUERY_LENGTH = 100  # longer searches are cut, not refused: nobody types more by hand


def home(request):
    """Approved sites, newest first, optionally filtered by ?q= over name and description."""
    query = strip_control_characters(request.GET.get("q", "")).strip()[:MAX_QUERY_LENGTH]
    sites = Site.objects.filter(approved=True)
    if query:
        sites = sites.filter(Q(name__icontains=query) | Q(description__icontains=query))
    # get_page() never fails: a non-number gives page 1, a number past the end gives the last page.
    page = Paginator(sites, settings.SITES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "home.html", {"page": page, "query": query})


def submit(request):
    if request.method != "POST":
        return render(request, "submit.html", {"form": SiteForm()})
    form = SiteForm(request.POST)
    if form.is_spam():
        return redirect("thanks")  # pretend success: a bot told nothing learns nothing
    if form.is_valid():
        try:
            # A savepoint, so a failed INSERT leaves any surrounding transaction usable.
            with transaction.atomic():
                form.save()
        except IntegrityError as error:
            if not is_duplicate_url(error):
                raise  # a 500, logged and mailed to ADMINS like any other fault
            # The same URL was submitted concurrently and won the race past is_valid()'s check.
            form.add_error("url", Site._meta.get_field("url").error_messages["unique"])
        else:
            return redirect("thanks")
    return render(request, "submit.html", {"form": form})


def thanks(request):
    return render(request, "thanks.html")

from django.contrib import admin, messages
from django.utils.translation import ngettext

from app.models import Site

admin.site.site_header = "Site directory administration"
admin.site.site_title = "Site directory admin"


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "approved", "created_at", "approved_at"]
    list_filter = ["approved", "created_at"]
    search_fields = ["name", "url", "description"]
    readonly_fields = ["created_at", "approved_at"]
    actions = ["approve_sites"]

    @admin.action(description="Approve selected sites")
    def approve_sites(self, request, queryset):
        pending = list(queryset.filter(approved=False))  # approving again would change nothing
        for site in pending:
            site.approve()
        count = len(pending)
        self.message_user(
            request, ngettext("Approved %d site.", "Approved %d sites.", count) % count, messages.SUCCESS
        )

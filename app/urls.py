# /healthz and /readyz are answered by app.health.HealthCheckMiddleware before URL routing.
from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path
from django.views.static import serve

from app import views

urlpatterns = [
    path("", views.home, name="home"),
    path("submit/", views.submit, name="submit"),
    path("submit/thanks/", views.thanks, name="thanks"),
    path("admin/", admin.site.urls),
]

if settings.TRIAL:
    # The trial setup has no nginx in front: the app serves the files collected into the image
    # itself (slowly, but only on this machine). In production nginx serves /static/ and this is off.
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}))

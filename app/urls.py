# /healthz and /readyz are answered by app.health.HealthCheckMiddleware before URL routing.
from django.contrib import admin
from django.urls import path

from app import views

urlpatterns = [
    path("", views.home, name="home"),
    path("submit/", views.submit, name="submit"),
    path("submit/thanks/", views.thanks, name="thanks"),
    path("admin/", admin.site.urls),
]

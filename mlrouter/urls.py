"""URL map: the admin, the /v1 API and the demo upstream emulator."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "ML Router"
admin.site.site_title = "ML Router admin"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("v1/", include("completions.urls")),
    path("telegram/", include("bot.urls")),
    path("docs/", include("docs.urls")),
    # The built-in upstream emulator: the demo provider (see completions/emulator); no real model behind it.
    path("emulator/", include("completions.emulator.urls")),
]
